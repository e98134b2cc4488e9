"""`phr idp …` commands for operators."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy import select

from idp import data_key_rotation, housekeeping, keys
from idp.clients import load_clients_file
from idp.context import ACCESS_TOKEN_TTL, LOGIN_SESSION_TTL
from idp.models import Client, InitialAccessToken, SigningKey
from idp.passkey.cli import staff
from idp.subjects import next_entry
from idp.tokens import new_handle, now_utc, sha256_hex
from phr_core import key_rotation
from phr_core.config import ConfigError, load_settings
from phr_core.db import Database
from phr_core.key_commands import rotation_command


def _db() -> tuple[Database, str]:
    settings = load_settings()
    return Database(settings.database_urls["idp"]), settings.secret("PHR_IDP_DATA_KEY")


@click.command("rotate-keys")
@click.option(
    "--force",
    is_flag=True,
    help="Promote the waiting key even if verifiers may not have fetched it yet.",
)
def rotate_keys(force: bool) -> None:
    """Rotate the token-signing keys: the waiting key (published in the JWKS since the last
    rotation) starts signing, the current one is kept in the JWKS until every token it signed
    has expired, and a new waiting key is published. Run it on a schedule, e.g. monthly."""
    db, data_key = _db()
    try:
        with db.session() as s:
            keys.ensure_keys(s, data_key)
        with db.session() as s:
            promoted = keys.rotate(s, data_key, force=force)
    except keys.RotationTooSoon as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo("now signing with: " + ", ".join(promoted))
    click.echo("running IdP workers pick the new key up within 30 seconds")


@click.command("keys")
def list_keys() -> None:
    """List signing keys and their state (next, current, retired)."""
    db, _ = _db()
    try:
        with db.session() as s:
            for k in s.scalars(select(SigningKey).order_by(SigningKey.created_at)):
                until = f" until {k.retire_after:%Y-%m-%d %H:%M}" if k.retire_after else ""
                click.echo(f"{k.kid:<32} {k.alg:<6} {k.state}{until}")
    finally:
        db.dispose()


@click.command("clients")
@click.option("--load", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def clients(path: Path | None) -> None:
    """List registered clients, or register/update them from a JSON file (--load)."""
    db, _ = _db()
    try:
        with db.session() as s:
            if path:
                click.echo(f"registered {load_clients_file(s, path)} client(s) from {path}")
                return
            for c in s.scalars(select(Client).order_by(Client.client_id)):
                method = c.client_metadata.get("token_endpoint_auth_method", "client_secret_basic")
                click.echo(f"{c.client_id:<32} {c.registration:<8} sector={c.sector} auth={method}")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()


@click.command("registration-token")
@click.option("--uses", default=1, show_default=True, help="How many registrations it allows.")
@click.option("--days", default=7, show_default=True, help="How long it stays valid.")
@click.option("--note", default="", help="Who it is for (kept with it; no personal data).")
def registration_token(uses: int, days: int, note: str) -> None:
    """Make an initial access token for dynamic client registration (RFC 7591) and print it
    once; give it to the app developer. Only its hash is stored."""
    db, _ = _db()
    token = new_handle(32)
    try:
        with db.session() as s:
            s.add(
                InitialAccessToken(
                    token_hash=sha256_hex(token),
                    note=note,
                    uses_left=uses,
                    expires_at=now_utc() + timedelta(days=days),
                )
            )
    finally:
        db.dispose()
    click.echo(token)


@click.command("purge")
def purge() -> None:
    """Delete expired codes, tokens, sessions, challenges and replay records now (running IdP
    workers also do it hourly). Grants, people, clients, keys and audit trails are kept."""
    db, _ = _db()
    try:
        with db.session() as s:
            counts = housekeeping.purge(s)
    finally:
        db.dispose()
    for kind, n in counts.items():
        click.echo(f"{n:>8}  {kind}")


@click.command("rotate-pairwise-key")
def rotate_pairwise_key() -> None:
    """Add a new pairwise-subject key in front of PHR_PAIRWISE_KEY. Sectors (apps) registered
    from now on get their subjects and pairwise ids under it; every existing sector keeps the
    key it has, so nobody's `sub` at any existing app changes. The old keys are never dropped
    while a sector uses them. Running IdP workers use it for the next new sector."""
    settings = load_settings()
    try:
        path = key_rotation.secret_file(settings, "PHR_PAIRWISE_KEY")
        with key_rotation.locked(path):  # another shell's rotation would pick the same id
            entry = next_entry(key_rotation.read(path), key_rotation.fresh_secret(settings))
            _, entries = key_rotation.prepend(settings, "PHR_PAIRWISE_KEY", entry)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ids = [e.partition(":")[0] if ":" in e else "1" for e in entries]
    click.echo(f"new sectors now use pairwise key {ids[0]} (in {path}); kept: {', '.join(ids[1:])}")


rotate_session_key = rotation_command(
    "rotate-session-key",
    "PHR_IDP_SECRET_KEY",
    LOGIN_SESSION_TTL.total_seconds(),
    """Rotate the key that signs the IdP's session cookies, signing nobody out.

    \b
    1. phr idp rotate-session-key, then restart the IdP (rolling): new cookies are signed
       with the new key, cookies signed with the old one still open.
    2. phr idp rotate-session-key --retire, 8 hours later (the longest sign-in), then
       restart: a cookie signed with the old key is refused from then on.
    """,
)


rotate_access_token_key = rotation_command(
    "rotate-access-token-key",
    "PHR_ACCESS_TOKEN_KEY",
    ACCESS_TOKEN_TTL.total_seconds() + 300,
    """Rotate the shared access-token key (IdP, PHR servers, consent service) without downtime.

    \b
    1. phr idp rotate-access-token-key, where the services read the shared secret file (give
       every host the new file): PHR servers and the consent API open tokens under both keys
       within seconds; then restart the IdP (rolling): it seals with the new key.
    2. phr idp rotate-access-token-key --retire, 10 minutes later (the 5-minute token
       lifetime and leeway), then restart the IdP: tokens under the old key are refused.
    """,
)


@click.command("rotate-data-key")
@click.option("--retire", is_flag=True, help="Re-seal everything, then drop the older keys.")
@click.option("--force", is_flag=True, help="With --retire: do not wait for the overlap.")
@click.option(
    "--reseal",
    "reseal_only",
    is_flag=True,
    help="Only the re-seal pass (for a secret kept in the environment, rotated by hand).",
)
def rotate_data_key(retire: bool, force: bool, reseal_only: bool) -> None:
    """Rotate PHR_IDP_DATA_KEY (signing keys and card attributes at rest) while the IdP
    serves; passkeys, card bindings and auth-app sign-ins keep their identifiers.

    \b
    1. phr idp rotate-data-key: a new key in front; running IdP workers seal under it from
       their next request, and still open what the old key sealed.
    2. phr idp rotate-data-key --retire, 20 minutes later: re-seals the signing keys and card
       attributes under the new key in small batches (online), re-indexes the counter's
       lookup, then drops the old key.
    """
    if force and not retire:
        raise click.UsageError("--force only goes with --retire")
    settings = load_settings()
    try:
        if not (retire or reseal_only):
            click.echo(data_key_rotation.rotate(settings))
            return
        db = Database(settings.database_urls["idp"])
        try:
            if reseal_only:
                secret = settings.secret(data_key_rotation.VARIABLE)
                click.echo(data_key_rotation.reseal(db, secret).line())
            else:
                click.echo(data_key_rotation.retire(settings, db, force=force))
        finally:
            db.dispose()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


commands = [
    rotate_keys,
    rotate_data_key,
    rotate_access_token_key,
    rotate_pairwise_key,
    rotate_session_key,
    list_keys,
    clients,
    registration_token,
    staff,
    purge,
]
