"""Security review (branch attack) of POST /person/erase (idp/endpoints/person_erase.py): the
hint names a person forever. Any JWT the IdP signed with the portal as audience erases its
`sub`, whatever its type or age, and whether or not that sign-in still lives; an ID token ends
up in URLs (/logout?id_token_hint=...: logs, browser history), and erasure cannot be undone.
Both tests failed when written."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.context import IdP
from idp.endpoints.logout import BACKCHANNEL_EVENT
from idp.models import Person
from idp.tokens import now_utc, sign
from tests.idp.conftest import Browser, basic, code_request, exchange, pkce_pair


def _sign_in(app: Flask, portal: dict, person: int) -> tuple[Browser, dict]:
    verifier, challenge = pkce_pair()
    browser = Browser(app.test_client(), person=person)
    back = browser.authorize(**code_request(portal, challenge))
    return browser, exchange(app, portal, back["code"][0], verifier).get_json()


def _people(app: Flask) -> int:
    with app.extensions["phr_db"].session() as s:
        return len(s.scalars(select(Person.id)).all())


def _portal(register: Callable[..., dict]) -> tuple[dict, dict[str, str]]:
    portal = register(
        "portal-like",
        phr_first_party=True,
        phr_sector="phr",
        scope="openid",
        post_logout_redirect_uris=["https://rp.example.jp/"],
    )
    return portal, basic(portal["client_id"], portal["client_secret"])


def test_a_logout_token_is_no_id_token_hint(idp_app: Flask, register: Callable[..., dict]) -> None:
    """A back-channel logout token (typ logout+jwt, `events`, sent to the portal's
    backchannel_logout_uri) carries the same iss/aud/sub: it must not name a person to erase."""
    portal, auth = _portal(register)
    _, tokens = _sign_in(idp_app, portal, 1)
    api = idp_app.test_client()
    sub = jwt.decode(tokens["id_token"], KeySet.import_key_set(api.get("/jwks").get_json()))
    ctx: IdP = idp_app.extensions["idp"]
    now = int(now_utc().timestamp())
    claims = {
        "iss": ctx.issuer, "aud": portal["client_id"], "sub": sub.claims["sub"], "iat": now,
        "exp": now + 120, "jti": "j", "events": {BACKCHANNEL_EVENT: {}},
    }  # fmt: skip
    with idp_app.app_context():
        logout_token = sign(ctx, claims, typ="logout+jwt")
    resp = api.post("/person/erase", data={"id_token_hint": logout_token}, headers=auth)
    assert resp.status_code == 400, resp.get_json()
    assert _people(idp_app) == 1


def test_an_ended_sign_ins_old_id_token_erases_nobody(
    idp_app: Flask, register: Callable[..., dict]
) -> None:
    """Once the sign-in the hint names is over (logged out: no live session, no live refresh
    token with its `sid`), the hint is a leftover, not the portal speaking for a signed-in
    person; still, /person/erase found the person by `sub` alone (every person's subject
    computed) and erased them."""
    portal, auth = _portal(register)
    browser, tokens = _sign_in(idp_app, portal, 1)
    _sign_in(idp_app, portal, 2)
    hint = tokens["id_token"]
    out = browser.client.get(
        "/logout",
        query_string={"id_token_hint": hint, "post_logout_redirect_uri": "https://rp.example.jp/"},
    )
    assert out.status_code == 302  # the sign-in ended
    resp = idp_app.test_client().post("/person/erase", data={"id_token_hint": hint}, headers=auth)
    assert resp.status_code == 400 or resp.get_json() == {"erased": False}
    assert _people(idp_app) == 2
