"""`phr federation …`: run the authority and manage who it vouches for. Attached by
launcher/cli.py (`serve` comes from there).

    phr federation add https://app.example.jp [--jwks FILE] [--type openid_relying_party]
    phr federation add https://fhir.city.example.jp --type oauth_resource --municipalities 072010
    phr federation remove https://app.example.jp
    phr federation list
    phr federation mark issue|revoke https://app.example.jp
    phr federation export-anchor [--out FILE]
    phr federation rotate-key SERVICE [--promote | --retire [--force]]
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from federation import jose, keys, trust_marks
from federation.authority import store
from federation.authority.policies import STATEMENT_LIFETIME_S, municipalities_policy
from federation.entity import statement
from federation.entity.fetch import UrlFetcher, acceptable_entity_id
from federation.errors import FederationError
from phr_core import key_rotation
from phr_core.config import ConfigError, Settings, load_settings
from phr_core.db import Database
from phr_core.services import BY_NAME

# A statement signed with the old key lives at most an hour (and a chain built on it no
# longer), plus leeway for clocks.
RETIRE_AFTER_S = STATEMENT_LIFETIME_S + 300


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _db(s: Settings) -> Database:
    return Database(s.database_urls["federation"])


def _json_file(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{what} {path}: {exc}") from None


def _published_jwks(entity_id: str, s: Settings) -> dict[str, Any]:
    """The keys in the entity's own configuration (checked self-signed), for the operator to
    compare out of band before vouching for them."""
    try:
        fetched = UrlFetcher.for_settings(s).get(statement.configuration_url(entity_id))
        if fetched.status != 200:
            raise click.ClickException(f"{entity_id}: entity configuration HTTP {fetched.status}")
        ec = statement.parse(fetched.body.strip(), what="entity configuration")
        jose.verify(ec.jwt, ec.jwks, statement.TYP, what="entity configuration")
    except FederationError as exc:
        raise click.ClickException(f"{entity_id}: {exc}") from None
    if ec.sub != entity_id:
        raise click.ClickException(f"{entity_id}: its configuration is about {ec.sub}")
    return ec.jwks


@click.command("add")
@click.argument("entity_id")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its public federation keys (JWK Set JSON). Default: fetched from its entity "
    "configuration; compare the printed thumbprints with the entity out of band.",
)
@click.option("--type", "entity_types", multiple=True, help="Entity type(s) it may publish.")
@click.option("--intermediate", is_flag=True, help="It is an authority (e.g. a prefecture).")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its own metadata_policy (JSON); default: the federation's rules.",
)
@click.option(
    "--municipalities",
    default="",
    help="A PHR server (--type oauth_resource): the only 全国地方公共団体コード it may claim as "
    "holding records of (space- or comma-separated), added to the policy as subset_of.",
)
def add(
    entity_id: str,
    jwks_file: Path | None,
    entity_types: tuple[str, ...],
    intermediate: bool,
    policy_file: Path | None,
    municipalities: str,
) -> None:
    """Vouch for ENTITY_ID: the fetch endpoint issues statements about it from now on."""
    s = _settings()
    codes = municipalities.replace(",", " ").split()
    if codes and "oauth_resource" not in entity_types:
        raise click.ClickException(
            "--municipalities is for a PHR server: add --type oauth_resource"
        )
    bad = [c for c in codes if not re.fullmatch(r"\d{6}", c)]
    if bad:
        raise click.ClickException(f"not a six-digit 全国地方公共団体コード: {', '.join(bad)}")
    if not acceptable_entity_id(entity_id, allow_http_loopback=not s.production):
        raise click.ClickException(f"{entity_id!r} is not an https entity identifier")
    jwks = _json_file(jwks_file, "--jwks") or _published_jwks(entity_id, s)
    db = _db(s)
    try:
        with db.session() as session:
            store.add(
                session,
                entity_id,
                jwks,
                entity_types=list(entity_types),
                intermediate=intermediate,
                metadata_policy=_policy(_json_file(policy_file, "--policy"), codes),
            )
    except (ValueError, FederationError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    kids = ", ".join(k.get("kid", "?") for k in jwks["keys"])
    click.echo(f"added {entity_id} (keys: {kids})")


def _policy(given: dict | None, codes: list[str]) -> dict | None:
    return municipalities_policy(given, codes) if codes else given


@click.command("remove")
@click.argument("entity_id")
def remove(entity_id: str) -> None:
    """Stop vouching for ENTITY_ID at once (fresh resolutions fail now; cached chains when
    their statements expire, within an hour)."""
    db = _db(_settings())
    try:
        with db.session() as session:
            removed = store.remove(session, entity_id)
    finally:
        db.dispose()
    if not removed:
        raise click.ClickException(f"{entity_id} is not a current subordinate")
    click.echo(f"removed {entity_id}")


@click.command("list")
def list_() -> None:
    """The entities this authority vouches for."""
    db = _db(_settings())
    try:
        with db.session() as session:
            for entity_id in store.listing(session):
                click.echo(entity_id)
    finally:
        db.dispose()


@click.group("mark")
def mark() -> None:
    """Issue and revoke the "certified PHR app" trust mark."""


@mark.command("issue")
@click.argument("entity_id")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
def mark_issue(entity_id: str, days: int) -> None:
    """Certify ENTITY_ID; prints the trust mark for its entity configuration's `trust_marks`
    (it can also fetch it from the trust mark endpoint)."""
    s = _settings()
    db = _db(s)
    try:
        with db.session() as session:
            row = store.record_mark(session, trust_marks.CERTIFIED_PHR_APP, entity_id, days * 86400)
            issued = int(row.issued_at.timestamp())
    finally:
        db.dispose()
    click.echo(
        trust_marks.issue(
            s.urls["federation"],
            keys.entity_key(s, "federation"),
            entity_id,
            lifetime_s=days * 86400,
            now=issued,
        )
    )


@mark.command("revoke")
@click.argument("entity_id")
def mark_revoke(entity_id: str) -> None:
    """Revoke ENTITY_ID's marks: the status endpoint answers `revoked` from now on."""
    db = _db(_settings())
    try:
        with db.session() as session:
            n = store.revoke_marks(session, entity_id, trust_marks.CERTIFIED_PHR_APP)
    finally:
        db.dispose()
    click.echo(f"revoked {n} trust mark(s) of {entity_id}")


@click.command("export-anchor")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Default: PHR_FEDERATION_TRUST_ANCHOR_FILE.",
)
def export_anchor(out: Path | None) -> None:
    """Write {this anchor's entity id: its public JWK Set}, the file every service reads to
    know which trust anchor to accept (PHR_FEDERATION_TRUST_ANCHOR_FILE)."""
    s = _settings()
    if keys.authority_hints(s, "federation"):
        raise click.ClickException("this authority is an intermediate, not a trust anchor")
    path = out or Path(s.option("PHR_FEDERATION_TRUST_ANCHOR_FILE"))
    data = {s.urls["federation"]: keys.published_jwks(s, "federation")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    click.echo(f"trust anchor {s.urls['federation']} written to {path}")


def _reregister(s: Settings, service: str, jwks: dict[str, Any]) -> bool:
    """Vouch for `service`'s entity with `jwks` at this authority, if it vouches for it: the
    subordinate statements it issues from now on (each fetch signs a fresh one) name them."""
    db = _db(s)
    try:
        with db.session() as session:
            row = store.active(session, s.urls[service])
            if row is not None:
                row.jwks = jwks
            return row is not None
    finally:
        db.dispose()


def _marks_signed_before(s: Settings, since: datetime) -> int:
    """How many live trust marks this authority signed before `since` (with a key that is
    about to be retired)."""
    db = _db(s)
    try:
        with db.session() as session:
            return store.live_marks_issued_before(session, since)
    finally:
        db.dispose()


@click.command("rotate-key")
@click.argument("service", type=click.Choice(list(BY_NAME)))
@click.option("--promote", is_flag=True, help="Start signing with the staged key.")
@click.option("--retire", is_flag=True, help="Drop the keys older than the newest one.")
@click.option("--force", is_flag=True, help="With --retire: do not wait for the overlap.")
def rotate_key(service: str, promote: bool, retire: bool, force: bool) -> None:
    """Rotate SERVICE's federation key without breaking trust chains.

    \b
    1. phr federation rotate-key SERVICE
       When this authority vouches for SERVICE: it vouches for the new key beside the old
       one at once (its subordinate statements name both), and the new key starts signing
       SERVICE's entity configuration, which publishes both.
       Otherwise (`federation` itself, or a superior elsewhere) the new key is staged:
       published, signing nothing. For the trust anchor the trust anchor file is rewritten
       with both keys: copy it to every service trusting the anchor and restart them; for
       an intermediate or a service, its superior registers the keys again
       (`phr federation add ENTITY`, which fetches them). Then:
    2. phr federation rotate-key SERVICE --promote: the staged key starts signing.
    3. phr federation rotate-key SERVICE --retire, an hour later (the longest a statement
       signed with the old key lives): the old key is dropped from the secret and from what
       this authority vouches for. For `federation`, only once every live trust mark signed
       with the old key is re-issued (`phr federation mark issue`), or with --force.
    """
    s = _settings()
    name = keys.secret_name(service)
    try:
        if retire:
            _retire(s, service, name, force)
        elif promote:
            _promote(s, name)
            click.echo(f"{name}: now signing with {keys.entity_key(s, service).kid}")
        else:
            _rotate(s, service, name)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    jwks = keys.published_jwks(s, service)
    if service == "federation":
        _write_anchor_file(s)
    else:
        _reregister(s, service, jwks)
    click.echo(f"{service} publishes keys: {', '.join(k['kid'] for k in jwks['keys'])}")


def _rotate(s: Settings, service: str, name: str) -> None:
    entry = key_rotation.fresh_secret(s)
    new = jose.federation_key(entry)
    both = jose.public_jwks(new, *keys.entity_keys(s, service))
    if service != "federation" and _reregister(s, service, both):
        path, _ = key_rotation.prepend(s, name, entry)
        click.echo(f"{name}: now signing with {new.kid} (in {path}); old keys published")
        return
    path, _ = key_rotation.prepend(s, name, keys.STAGED + entry)
    click.echo(f"{name}: new key {new.kid} staged in {path}: published, signing nothing yet")
    if service == "federation" and not keys.authority_hints(s, "federation"):
        click.echo("copy the trust anchor file to every service trusting this anchor, restart")
    else:
        click.echo(f"its superior must register it again: phr federation add {s.urls[service]}")
    click.echo(f"then: phr federation rotate-key {service} --promote")


def _promote(s: Settings, name: str) -> None:
    """The staged key (in front) starts signing: under the secret's lock, as every other
    rewrite of a key secret, so a rotation in another shell is not lost."""
    path = key_rotation.secret_file(s, name)
    with key_rotation.locked(path):
        entries = key_rotation.read(path).split()
        if not entries or not entries[0].startswith(keys.STAGED):
            raise ConfigError(f"{name} has no staged key to promote")
        key_rotation.replace(path, " ".join([entries[0].removeprefix(keys.STAGED), *entries[1:]]))


def _retire(s: Settings, service: str, name: str, force: bool) -> None:
    path = key_rotation.secret_file(s, name)
    if any(e.startswith(keys.STAGED) for e in key_rotation.read(path).split()):
        raise ConfigError(f"{name} holds a staged key: --promote it first")
    since = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if service == "federation" and not force and _marks_signed_before(s, since):
        raise ConfigError(
            "live trust marks were signed with the old key: re-issue them "
            "(phr federation mark issue) or use --force"
        )
    path, dropped = key_rotation.drop_older(s, name, RETIRE_AFTER_S, force)
    click.echo(f"{name}: retired {dropped} older key(s) in {path}")


def _write_anchor_file(s: Settings) -> None:
    if keys.authority_hints(s, "federation"):
        return
    path = Path(s.option("PHR_FEDERATION_TRUST_ANCHOR_FILE"))
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        data[s.urls["federation"]] = keys.published_jwks(s, "federation")
        key_rotation.replace(path, json.dumps(data, indent=2))
        click.echo(f"trust anchor keys written to {path}")


commands = [add, remove, list_, mark, export_anchor, rotate_key]
