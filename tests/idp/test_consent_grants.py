"""The IdP with the real consent service, both on loopback HTTP: the consent screen records the
grant there (with the PHR-sector subject), access tokens carry its id, the consent API reads the
sealed tokens, and a revocation in the consent service stops refresh and brings the consent
screen back."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.serving import make_server

from consent.app import create_app as create_consent
from idp.app import create_app as create_idp
from idp.app import prepare
from idp.clients import upsert_static
from phr_core.config import Settings, load_settings
from tests.conftest import free_port
from tests.idp.conftest import REDIRECT, Browser, basic, code_request, pkce_pair, token_claims


@dataclass
class Pair:
    idp: Flask
    consent: Flask
    settings: Settings


@pytest.fixture
def pair(migrated: Settings) -> Iterator[Pair]:
    idp_port, consent_port = free_port(), free_port()
    settings = load_settings(
        {
            **migrated.environ,
            "PHR_ISSUER": f"http://127.0.0.1:{idp_port}",
            "PHR_CONSENT_URL": f"http://127.0.0.1:{consent_port}",
        }
    )
    prepare(settings)
    idp_app, consent_app = create_idp(settings), create_consent(settings)
    servers = [
        make_server("127.0.0.1", idp_port, idp_app, threaded=True),
        make_server("127.0.0.1", consent_port, consent_app, threaded=True),
    ]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield Pair(idp_app, consent_app, settings)
    finally:
        for srv in servers:
            srv.shutdown()
        for app in (idp_app, consent_app):
            app.extensions["phr_db"].dispose()


def _consent_api(pair: Pair, path: str, method: str = "GET") -> dict:
    grants = pair.idp.extensions["idp"].grants
    with pair.idp.app_context():
        token = grants._service_token(pair.idp.extensions["idp"])
    req = urllib.request.Request(  # noqa: S310 (loopback test servers)
        pair.settings.urls["consent"] + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback)
        return json.load(resp)


def test_grants_live_in_the_consent_service(pair: Pair) -> None:
    app = pair.idp
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "growth-app",
                "client_name": "すくすく成長アプリ",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access patient/Immunization.rs patient/Observation.rs",
                "purpose": "予防接種の予定を表示するため",
            },
            "growth-secret-" + "x" * 30,
        )
    rp = {"client_id": "growth-app", "redirect_uris": [REDIRECT]}
    auth = basic("growth-app", "growth-secret-" + "x" * 30)
    browser = Browser(app.test_client())
    scope = "openid offline_access patient/Immunization.rs"

    def flow() -> dict:
        verifier, challenge = pkce_pair()
        back = browser.authorize(**code_request(rp, challenge, scope=scope))
        return app.test_client().post(
            "/token",
            data={"grant_type": "authorization_code", "code": back["code"][0],
                  "redirect_uri": REDIRECT, "code_verifier": verifier},
            headers=auth,
        ).get_json()  # fmt: skip

    tokens = flow()
    claims = token_claims(app, tokens["access_token"])
    grant = _consent_api(pair, f"/api/v1/grants/{claims['grant_id']}")
    assert grant["status"] == "active" and grant["client_id"] == "growth-app"
    assert grant["subject"] == claims["sub"]  # the PHR-sector subject
    assert sorted(grant["scopes"]) == sorted(scope.split())
    assert grant["categories"] == ["vaccination"]
    assert grant["purpose"] == "予防接種の予定を表示するため"

    flow()  # the same scopes again: not asked again
    assert browser.pages.count("/consent") == 1

    _consent_api(pair, f"/api/v1/grants/{claims['grant_id']}/revoke", "POST")
    refresh = app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=auth,
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    flow()  # the person is asked again
    assert browser.pages.count("/consent") == 2
