"""`phr consent …` commands for operators. None of them prints personal data."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import click
from sqlalchemy import func, select

from consent import cache, linkage, receipts, receipts_cli, records
from consent.models import LinkRequest, utcnow
from phr_core import sealing
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from phr_core.key_commands import rotation_command


@contextmanager
def consent_db() -> Iterator[tuple[Database, Settings]]:
    settings = load_settings()
    db = Database(settings.database_urls["consent"])
    # Changes made here reach running servers: the change log for every host, the stamp file
    # for the workers on this one.
    cache.install(db, settings.var_dir / cache.STAMP_FILE)
    try:
        yield db, settings
    finally:
        db.dispose()


@click.command("status")
def status() -> None:
    """Counts of consents by kind and status, and pending link requests per municipality."""
    with consent_db() as (db, _), db.session() as s:
        counts = Counter((v.record.kind, v.state()) for v in records.current(s))
        pending = s.execute(
            select(LinkRequest.municipality, func.count())
            .where(LinkRequest.status == "pending")
            .group_by(LinkRequest.municipality)
        ).all()
    for (kind, state), n in sorted(counts.items()):
        click.echo(f"{kind:<10} {state:<8} {n}")
    for city, n in pending:
        click.echo(f"pending link requests for {city}: {n}")


@click.command("expire-link-requests")
@click.option("--days", default=30, show_default=True, help="Age after which a request expires.")
def expire_link_requests(days: int) -> None:
    """Close link requests no city answered within DAYS and delete their card-verified
    attributes. Run it daily."""
    with consent_db() as (db, _), db.session() as s:
        n = linkage.expire_pending(s, utcnow() - timedelta(days=days))
    click.echo(f"expired {n} link request(s)")


@click.command("revoke-client")
@click.argument("client_id")
@click.option("--reason", default="revoked by the operator", show_default=True)
def revoke_client(client_id: str, reason: str) -> None:
    """Revoke every active grant of one app (e.g. a compromised client). The PHR server sees it
    at its next request."""
    with consent_db() as (db, _), db.session() as s:
        views = records.current(s, kind=records.RECIPIENT, actor=client_id, status=records.ACTIVE)
        for view in views:
            records.withdraw(s, view, recorded_by="operator", reason=reason)
    click.echo(f"revoked {len(views)} grant(s) of {client_id}")


@click.command("export")
@click.argument("subject")
def export(subject: str) -> None:
    """Print a person's consents (by their PHR-sector subject) as a FHIR Bundle, e.g. to answer
    a disclosure request."""
    with consent_db() as (db, settings), db.session() as s:
        bundle = receipts.fhir_bundle(records.current(s, subject=subject), settings)
    click.echo(json.dumps(bundle, ensure_ascii=False, indent=2))


rotate_token_key = rotation_command(
    "rotate-token-key",
    "PHR_CONSENT_TOKEN_DECRYPTION_KEY",
    sealing.RETIRE_AFTER_S,
    """Rotate the key IdPs seal the consent API's access tokens to, without downtime: a new
    key in front (published first, both open tokens); --retire 70 minutes later drops the
    old one. As `phr fhir rotate-token-key`.""",
)

commands = [
    status,
    expire_link_requests,
    revoke_client,
    export,
    *receipts_cli.commands,
    rotate_token_key,
]
