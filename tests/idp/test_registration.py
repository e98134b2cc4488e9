"""Dynamic client registration (RFC 7591/7592) behind an initial access token, with pairwise
sectors from redirect hosts or a sector_identifier_uri that must list every redirect URI."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from launcher.cli import main
from phr_core.config import Settings
from tests.idp.conftest import Browser, code_request, exchange, pkce_pair


@pytest.fixture
def initial_token(idp_app: Flask, migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(main, ["idp", "registration-token", "--uses", "2"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


# Every registration says why the app wants data (refused without: test_purpose_is_required).
PURPOSE = "子どもの成長を記録するため"


def _register(app: Flask, token: str, body: dict):
    return app.test_client().post(
        "/register", json={"purpose": PURPOSE, **body}, headers={"Authorization": f"Bearer {token}"}
    )


def test_register_use_manage_and_delete(idp_app: Flask, initial_token: str) -> None:
    meta = {
        "client_name": "Growth app",
        "redirect_uris": ["https://growth.example.jp/cb"],
        "scope": "openid patient/Observation.rs",
        "grant_types": ["authorization_code"],
        "purpose": PURPOSE,
    }
    assert _register(idp_app, "wrong", meta).status_code == 401
    resp = _register(idp_app, initial_token, meta)
    assert resp.status_code == 201, resp.get_json()
    reg = resp.get_json()
    assert reg["client_id"].startswith("dyn-") and reg["client_secret"]
    assert reg["subject_type"] == "pairwise"

    # The registered client completes a flow.
    rp = {**meta, "client_id": reg["client_id"], "client_secret": reg["client_secret"]}
    verifier, challenge = pkce_pair()
    browser = Browser(idp_app.test_client())
    back = browser.authorize(**code_request(rp, challenge))
    token = exchange(idp_app, rp, back["code"][0], verifier)
    assert token.status_code == 200

    c = idp_app.test_client()
    auth = {"Authorization": "Bearer " + reg["registration_access_token"]}
    uri = reg["registration_client_uri"].split("://", 1)[1].split("/", 1)[1]
    got = c.get("/" + uri, headers=auth)
    assert got.status_code == 200 and "client_secret" not in got.get_json()
    assert c.get("/" + uri, headers={"Authorization": "Bearer nope"}).status_code == 401
    # After the first sign-in the sector is fixed: moving the redirect host is refused.
    moved_meta = {
        **meta,
        "client_id": reg["client_id"],
        "redirect_uris": ["https://new.example/cb"],
    }
    moved = c.put("/" + uri, headers=auth, json=moved_meta)
    assert moved.status_code == 400 and moved.get_json()["error"] == "invalid_client_metadata"
    renamed_meta = {**meta, "client_id": reg["client_id"], "client_name": "Growth app 2"}
    renamed = c.put("/" + uri, headers=auth, json=renamed_meta)
    assert renamed.status_code == 200 and renamed.get_json()["client_name"] == "Growth app 2"
    assert c.delete("/" + uri, headers=auth).status_code == 204
    assert c.get("/" + uri, headers=auth).status_code == 401


A = ["https://a.example/cb"]
BAD = "invalid_client_metadata"
BAD_URI = "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": ["http://app.example.jp/cb"]}, BAD_URI),
        ({"redirect_uris": ["https://a.example/cb#frag"]}, BAD_URI),
        ({"redirect_uris": A, "phr_sector": "phr"}, BAD),
        ({"redirect_uris": A, "subject_type": "public"}, BAD),
        ({"redirect_uris": A, "scope": "openid system/*.write"}, BAD),
        ({"redirect_uris": [*A, "https://b.example/cb"]}, BAD_URI),
        ({"redirect_uris": A, "token_endpoint_auth_method": "tls_client_auth"}, BAD),
    ],
    ids=["http", "fragment", "named-sector", "public-sub", "system-scope", "two-hosts", "auth"],
)
def test_bad_metadata_is_refused(
    idp_app: Flask, initial_token: str, body: dict, error: str
) -> None:
    resp = _register(idp_app, initial_token, body)
    assert resp.status_code == 400 and resp.get_json()["error"] == error


def test_sector_identifier_uri(idp_app: Flask, initial_token: str) -> None:
    served: dict[str, list[str]] = {"list": []}
    doc = Flask("sector-doc")

    @doc.get("/sector.json")
    def sector_json():  # type: ignore[no-untyped-def]
        return json.dumps(served["list"]), 200, {"Content-Type": "application/json"}

    server = make_server("127.0.0.1", 0, doc)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}/sector.json"
        redirects = ["https://a.example/cb", "https://b.example/cb"]
        served["list"] = redirects[:1]
        missing = _register(
            idp_app, initial_token, {"redirect_uris": redirects, "sector_identifier_uri": uri}
        )
        assert missing.get_json()["error"] == "invalid_redirect_uri"
        served["list"] = redirects
        ok = _register(
            idp_app, initial_token, {"redirect_uris": redirects, "sector_identifier_uri": uri}
        )
        assert ok.status_code == 201, ok.get_json()
    finally:
        server.shutdown()
    from idp.models import Client

    with idp_app.extensions["phr_db"].session() as s:
        assert s.get(Client, ok.get_json()["client_id"]).sector == "127.0.0.1"


def test_purpose_is_required(idp_app: Flask, initial_token: str) -> None:
    """A parent cannot weigh a request that does not say why: registering without a purpose is
    refused with RFC 7591's invalid_client_metadata, naming the field; a purpose in one
    language (`purpose#en`) is enough."""
    body = {"redirect_uris": ["https://growth.example.jp/cb"], "client_name": "Growth app"}
    for missing in ({}, {"purpose": ""}, {"purpose": "   "}, {"purpose#en": 3}):
        resp = idp_app.test_client().post(
            "/register", json={**body, **missing},
            headers={"Authorization": f"Bearer {initial_token}"},
        )  # fmt: skip
        err = resp.get_json()
        assert resp.status_code == 400 and err["error"] == "invalid_client_metadata", err
        assert "purpose" in err["error_description"]
    resp = idp_app.test_client().post(
        "/register", json={**body, "purpose#en": "To chart your child's growth"},
        headers={"Authorization": f"Bearer {initial_token}"},
    )  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
