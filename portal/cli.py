"""`phr consent …` commands for the portal's own state (its stored tokens, its client key);
the launcher attaches them to the consent service's group, whose port the portal serves."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from consent.cli import consent_db
from phr_core.config import ConfigError, load_settings
from portal import secret_key_rotation
from portal.providers import client_jwk as portal_jwk
from portal.token_store import TokenStore


@click.command("purge-portal-tokens")
@click.option("--hours", default=24, show_default=True, help="Idle time after which to drop.")
def purge_portal_tokens(hours: int) -> None:
    """Drop the portal's stored tokens of sessions idle this long (closed without sign-out);
    sign-in also does this for the default idle time."""
    with consent_db() as (db, settings):
        store = TokenStore(db, settings.secret("PHR_CONSENT_SECRET_KEY"))
        n = store.purge_idle(timedelta(hours=hours))
    click.echo(f"dropped {n} idle portal session(s)")


@click.command("client-jwk")
def client_jwk() -> None:
    """The portal's public key for a city-run IdP that offers the portal's sign-in: register
    the portal there as a static client with `token_endpoint_auth_method` private_key_jwt and
    this `jwks` (PHR_IDP_CLIENTS_FILE), then name that IdP in PHR_CONSENT_OTHER_IDPS."""
    click.echo(json.dumps({"keys": [portal_jwk(load_settings())]}, indent=2))


@click.command("rotate-secret-key")
@click.option("--retire", is_flag=True, help="Re-seal what the older keys sealed, then drop them.")
@click.option("--force", is_flag=True, help="With --retire: do not wait for the overlap.")
def rotate_secret_key(retire: bool, force: bool) -> None:
    """Rotate PHR_CONSENT_SECRET_KEY (the portal's sessions, its stored tokens, pending link
    requests' attributes) signing nobody out.

    \b
    1. phr consent rotate-secret-key, then restart the consent service (rolling): new
       sessions and tokens under the new key, the old ones still open.
    2. phr consent rotate-secret-key --retire, a day later: re-seals the stored tokens and
       link requests in small batches (online), drops the old key; restart again.
    """
    if force and not retire:
        raise click.UsageError("--force only goes with --retire")
    try:
        if not retire:
            click.echo(secret_key_rotation.rotate(load_settings()))
            return
        with consent_db() as (db, settings):
            click.echo(secret_key_rotation.retire(settings, db, force=force))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


commands = [purge_portal_tokens, client_jwk, rotate_secret_key]
