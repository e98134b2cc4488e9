"""`phr consent …`: operators' commands reach running servers at once and print no personal
data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from consent.models import LinkRequest, utcnow
from launcher.cli import main
from phr_core.config import Settings
from phr_core.webapp import database
from tests.consent.conftest import ATTRIBUTES, CITY, Tokens


@pytest.fixture
def cli_env(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    return CliRunner()


def test_revoke_client_reaches_the_running_server(
    cli_env: CliRunner, client: FlaskClient, tokens: Tokens
) -> None:
    ids = []
    for sub in ("sub-1", "sub-2"):
        r = client.post(
            "/api/v1/grants",
            json={"subject": sub, "client_id": "bad-app", "scopes": ["patient/*.rs"]},
            headers=tokens.idp,
        )
        ids.append(r.json["id"])
        assert client.get(f"/api/v1/grants/{r.json['id']}", headers=tokens.phr).json["status"] == (
            "active"
        )
    result = cli_env.invoke(main, ["consent", "revoke-client", "bad-app"])
    assert result.exit_code == 0, result.output
    assert "revoked 2 grant(s)" in result.output
    for gid in ids:
        assert client.get(f"/api/v1/grants/{gid}", headers=tokens.phr).json["status"] == "revoked"

    status = cli_env.invoke(main, ["consent", "status"])
    assert "recipient  revoked  2" in status.output


def test_stale_link_requests_lose_their_attributes(
    cli_env: CliRunner, client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    r = client.post(
        f"/api/v1/subjects/sub-x/municipalities/{CITY}/consent",
        json={"categories": ["mch"], "attributes": ATTRIBUTES},
        headers=tokens.idp,
    )
    rid = r.json["link_request"]
    status = cli_env.invoke(main, ["consent", "status"])
    assert f"pending link requests for {CITY}: 1" in status.output
    assert ATTRIBUTES["name"] not in status.output

    assert "expired 0" in cli_env.invoke(main, ["consent", "expire-link-requests"]).output
    with consent_app.app_context(), database().session() as s:
        s.execute(update(LinkRequest).values(created_at=utcnow() - timedelta(days=31)))
    assert "expired 1" in cli_env.invoke(main, ["consent", "expire-link-requests"]).output
    with consent_app.app_context(), database().session() as s:
        row = s.get(LinkRequest, rid)
        assert (row.status, row.attributes) == ("expired", None)


def test_export_prints_a_fhir_bundle(
    cli_env: CliRunner, client: FlaskClient, tokens: Tokens
) -> None:
    client.post(
        "/api/v1/grants",
        json={"subject": "sub-e", "client_id": "app", "scopes": ["patient/*.rs"]},
        headers=tokens.idp,
    )
    result = cli_env.invoke(main, ["consent", "export", "sub-e"])
    assert result.exit_code == 0
    assert '"resourceType": "Bundle"' in result.output and '"Consent"' in result.output


def test_purge_portal_tokens_drops_idle_sessions_only(
    cli_env: CliRunner, migrated: Settings
) -> None:
    import time

    from consent.models import PortalTokens
    from phr_core.db import Database
    from portal.token_store import Tokens as StoredTokens
    from portal.token_store import TokenStore

    db = Database(migrated.database_urls["consent"])
    try:
        store = TokenStore(db, migrated.secret("PHR_CONSENT_SECRET_KEY"))
        idle = store.save("sub-idle", StoredTokens("at-1", "rt-1", time.time() + 300))
        store.save("sub-busy", StoredTokens("at-2", "rt-2", time.time() + 300))
        with db.session() as s:
            s.execute(
                update(PortalTokens)
                .where(PortalTokens.subject == "sub-idle")
                .values(last_used_at=utcnow() - timedelta(hours=30))
            )
        result = cli_env.invoke(main, ["consent", "purge-portal-tokens"])
        assert result.exit_code == 0, result.output
        assert "dropped 1 idle portal session(s)" in result.output
        with db.session() as s:
            assert [r.subject for r in s.query(PortalTokens)] == ["sub-busy"]
        assert store.drop(idle) is None
    finally:
        db.dispose()
