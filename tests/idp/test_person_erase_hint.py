"""POST /person/erase (idp/endpoints/person_erase.py) names the person by a sign-in that still
lives: the IdP's login session may have expired while the portal's refresh token of that
sign-in still works, and then the portal is still speaking for a signed-in person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from idp.models import LoginSession, Person
from idp.tokens import now_utc
from tests.idp.conftest import Browser, basic, code_request, exchange, pkce_pair


def _people(app: Flask) -> int:
    with app.extensions["phr_db"].session() as s:
        return len(s.scalars(select(Person.id)).all())


def test_an_expired_idp_session_with_a_live_refresh_token_still_erases(
    idp_app: Flask, register: Callable[..., dict]
) -> None:
    portal = register(
        "portal-like", phr_first_party=True, phr_sector="phr", scope="openid offline_access"
    )
    auth = basic(portal["client_id"], portal["client_secret"])
    verifier, challenge = pkce_pair()
    browser = Browser(idp_app.test_client(), person=1)
    asked = code_request(portal, challenge, scope="openid offline_access")
    code = browser.authorize(**asked)["code"][0]
    tokens = exchange(idp_app, portal, code, verifier).get_json()
    assert tokens.get("refresh_token")
    with idp_app.extensions["phr_db"].session() as s:
        s.execute(update(LoginSession).values(expires_at=now_utc() - timedelta(minutes=1)))
    api = idp_app.test_client()
    resp = api.post("/person/erase", data={"id_token_hint": tokens["id_token"]}, headers=auth)
    assert resp.get_json() == {"erased": True}
    assert _people(idp_app) == 0
    again = api.post("/person/erase", data={"id_token_hint": tokens["id_token"]}, headers=auth)
    assert again.status_code == 200 and again.get_json() == {"erased": False}  # a retry
