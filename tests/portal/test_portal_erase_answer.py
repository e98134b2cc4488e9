"""The portal says the IdP forgot the person only when the IdP says it erased someone
(portal/idp_client.py `erase_person`): `{"erased": false}` (already gone, or the sign-in the ID
token names has ended) is a 200 too, but nothing was erased there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from phr_core.config import load_settings
from portal import idp_client
from tests.conftest import make_environ
from tests.listener import listening


@pytest.mark.parametrize("erased", [True, False])
def test_erase_person_reports_what_the_idp_answered(tmp_path: Path, erased: bool) -> None:
    with listening() as idp:
        # One body answers both the discovery document and POST /person/erase.
        idp.body = json.dumps(
            {"issuer": idp.url, "phr_person_erase_endpoint": idp.url + "/person/erase",
             "erased": erased}
        ).encode()  # fmt: skip
        env = make_environ(tmp_path, f"sqlite:///{tmp_path}/x.db")
        env["PHR_IDP_PORT"] = str(idp.port)  # the home IdP: client_secret_basic
        app = Flask("portal-erase-answer")
        app.extensions["phr_settings"] = load_settings(env)
        with app.app_context():
            idp_client.forget_metadata()
            assert idp_client.settings().issuer == idp.url
            assert idp_client.erase_person(idp.url, "an.id.token") is erased
            idp_client.forget_metadata()  # this listener's document leaves with it
        assert any(r.startswith("POST /person/erase ") for r in idp.requests)
