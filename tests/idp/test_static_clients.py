"""Static clients from PHR_IDP_CLIENTS_FILE, registered at start; nothing personal in logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flask import Flask

from idp.app import create_app, prepare
from idp.clients import get_client
from idp.endpoints.interaction import demo_person_id
from phr_core.config import Settings, load_settings
from tests.idp.conftest import Browser, basic, code_request, exchange, pkce_pair


def test_clients_file_is_loaded_at_start(migrated: Settings, tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(
        json.dumps(
            [
                {
                    "client_id": "city-portal",
                    "client_name": "市ポータル",
                    "client_secret": "s" * 40,
                    "redirect_uris": ["https://portal.city.example.jp/cb"],
                    "phr_sector": "phr",
                    "scope": "openid",
                }
            ]
        )
    )
    settings = load_settings({**migrated.environ, "PHR_IDP_CLIENTS_FILE": str(path)})
    prepare(settings)
    app = create_app(settings)
    with app.extensions["phr_db"].session() as s:
        client = get_client(s, "city-portal")
        assert client is not None and client.sector == "phr" and client.check_secret("s" * 40)
        assert not client.check_secret("s" * 39)
    app.extensions["phr_db"].dispose()

    path.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        prepare(settings)


def test_no_person_id_or_token_in_logs(
    idp_app: Flask, register, caplog: pytest.LogCaptureFixture
) -> None:
    rp = register()
    caplog.set_level(logging.DEBUG)
    verifier, challenge = pkce_pair()
    browser = Browser(idp_app.test_client())
    back = browser.authorize(**code_request(rp, challenge, scope="openid offline_access"))
    body = exchange(idp_app, rp, back["code"][0], verifier).get_json()
    idp_app.test_client().post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=basic(rp["client_id"], "wrong"),
    )  # fmt: skip
    text = caplog.text
    for secret in (demo_person_id(1), back["code"][0], body["access_token"],
                   body["refresh_token"], rp["client_secret"]):  # fmt: skip
        assert secret not in text
