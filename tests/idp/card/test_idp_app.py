"""The card endpoints inside the real IdP app (idp.app:create_app, all IdP migrations), driven by
the card-reader CLI over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from idp.card.sessions import create_card_session, take_verified
from phr_core import migrations
from phr_core.services import get_service
from tests.conftest import create_app
from tests.idp.card.conftest import AuthorityEnv, CardIdp, start_authority
from tests.idp.card.test_cli_sign import run, serve_on_issuer_port


@pytest.fixture
def idp_app(environ: dict[str, str], tmp_path: Path) -> Iterator[tuple[AuthorityEnv, Flask]]:
    env = start_authority(environ, tmp_path)
    migrations.upgrade(get_service("idp"), env.settings.database_urls["idp"])
    app = create_app(get_service("idp"), env.settings)
    yield env, app
    app.extensions["phr_db"].dispose()
    env.server.shutdown()


def test_card_sign_in_through_the_real_idp_app(idp_app: tuple[AuthorityEnv, Flask]) -> None:
    env, app = idp_app
    env.card(name="real")
    idp = CardIdp(env, app)
    db = idp.db
    with serve_on_issuer_port(app, env.settings.ports["idp"]):
        with db.session() as s:
            cs = create_card_session(s, "login")
        out = run(
            idp,
            ["sign", cs.short_code, "--card", str(env.tmp / "real.json"), "--pin-stdin"],
            "1234\nABC123\n",
        )
        assert out.exit_code == 0, out.output
    with db.session() as s:
        result = take_verified(s, cs.id)
    assert result is not None and result.enrolled
    client = app.test_client()
    missing = client.get("/card/sessions/ZZZZ-ZZZZ")
    assert missing.status_code == 404 and missing.get_json()["error"] == "session_not_found"
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
