"""Account deletion at the IdP (idp/endpoints/person_erase.py, idp/erasure.py): after the
portal asks, a dump of every IdP table holds nothing of the person but the sign-in audit rows
docs/retention.md names (without their id), the browser's IdP sign-in no longer holds, and the
same card signs in again as a new person."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import demo as idp_demo
from idp.app import prepare
from idp.card.models import CardAudit, CardSession
from idp.models import Person
from idp.orm import Base
from launcher.demo import connector_jwk
from phr_core.db import Database
from tests.idp.card.conftest import AuthorityEnv, CardIdp
from tests.idp.card.test_cli_sign import run, serve_on_issuer_port
from tests.idp.card.test_idp_app import idp_app  # noqa: F401 (the fixture)
from tests.idp.conftest import basic, pkce_pair


def _card_sign_in(idp: CardIdp, browser: FlaskClient, query: dict[str, str]) -> dict:
    """The portal's sign-in with the card, through the IdP's pages; the token response."""
    settings = idp.settings
    resp = browser.get("/authorize", query_string=query)
    login = urlsplit(resp.headers["Location"])
    assert login.path == "/login", resp.headers["Location"]
    page = browser.get(login.path + "?" + login.query)
    assert page.status_code == 200
    with idp.db.session() as s:
        short_code = s.scalars(
            select(CardSession.short_code).where(CardSession.status == "pending")
        ).one()
    with serve_on_issuer_port(idp.app, settings.ports["idp"]):
        card = ["sign", short_code, "--card", str(idp.env.tmp / "erased.json"), "--pin-stdin"]
        out = run(idp, card, "1234\nABC123\n")
        assert out.exit_code == 0, out.output
    resp = browser.get("/login/card?" + login.query)
    for _ in range(4):  # the first-party portal needs no consent screen
        target = urlsplit(resp.headers["Location"])
        if target.path == "/auth/callback":
            break
        resp = browser.get(target.path + "?" + target.query)
    code = parse_qs(target.query)["code"][0]
    client_id = settings.option("PHR_CONSENT_CLIENT_ID")
    tokens = idp.app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": query["redirect_uri"],
            "code_verifier": query["verifier"],
        },
        headers=basic(client_id, settings.secret("PHR_CONSENT_CLIENT_SECRET")),
    )
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    return tokens.get_json()


def dump(db: Database) -> str:
    """Every row of every IdP table, as text (binary columns as Base64)."""
    lines: list[str] = []
    with db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)):
                cells = [
                    base64.b64encode(v).decode() if isinstance(v, bytes) else str(v) for v in row
                ]
                lines.append(table.name + " " + " ".join(cells))
    return "\n".join(lines)


def test_deleted_person_leaves_nothing_but_unlinked_audit(
    idp_app: tuple[AuthorityEnv, Flask],  # noqa: F811
) -> None:
    idp = CardIdp(*idp_app)
    idp.env.card(name="erased")
    app, settings = idp.app, idp.settings
    prepare(settings)  # signing keys
    idp_demo.load(idp.db, settings, connector_jwk=connector_jwk(settings))
    portal_id = settings.option("PHR_CONSENT_CLIENT_ID")
    portal_secret = settings.secret("PHR_CONSENT_CLIENT_SECRET")
    redirect_uri = settings.urls["consent"] + "/auth/callback"

    def query() -> dict[str, str]:
        verifier, challenge = pkce_pair()
        return {
            "response_type": "code", "client_id": portal_id, "redirect_uri": redirect_uri,
            "scope": "openid offline_access", "state": "st", "nonce": "n",
            "code_challenge": challenge, "code_challenge_method": "S256",
            "verifier": verifier,  # not sent on: kept for the exchange
        }  # fmt: skip

    browser = app.test_client()
    first = _card_sign_in(idp, browser, query())
    keys = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    sub = jwt.decode(first["id_token"], keys).claims["sub"]
    with idp.db.session() as s:
        (person_id,) = s.scalars(select(Person.id)).all()
    before = dump(idp.db)
    assert before.count(person_id) > 5  # binding, attributes, lookup, sessions, tokens, audit

    api = app.test_client()
    refused = api.post("/person/erase", data={"id_token_hint": first["id_token"]})
    assert refused.status_code == 401
    other_app = api.post(
        "/person/erase",
        data={"id_token_hint": first["id_token"]},
        headers=basic("demo-vaccination-app", "x"),
    )
    assert other_app.status_code == 401  # a public client: no credentials to prove
    with idp.db.session() as s:
        assert s.get(Person, person_id) is not None

    portal = basic(portal_id, portal_secret)
    erased = api.post("/person/erase", data={"id_token_hint": first["id_token"]}, headers=portal)
    assert erased.status_code == 200 and erased.get_json() == {"erased": True}
    again = api.post("/person/erase", data={"id_token_hint": first["id_token"]}, headers=portal)
    assert again.get_json() == {"erased": False}  # a retry is harmless

    after = dump(idp.db)
    assert person_id not in after
    for table in ("idp_card_binding", "idp_card_attributes", "idp_person_lookup",
                  "idp_login_session", "idp_refresh_token", "idp_authorization_code"):  # fmt: skip
        assert f"\n{table} " not in "\n" + after, table
    with idp.db.session() as s:
        kept = s.scalars(select(CardAudit)).all()
        assert kept and all(a.person_id is None for a in kept)  # when and how, never whose
    # The portal's refresh token is dead, and this browser's IdP sign-in ended with the person.
    refresh = api.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=portal,
    )
    assert refresh.status_code == 400
    silent = browser.get("/authorize", query_string={**query(), "prompt": "none"})
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == ["login_required"]

    # The same card enrols again: a new person with another subject.
    second = _card_sign_in(idp, browser, query())
    assert jwt.decode(second["id_token"], keys).claims["sub"] != sub
    with idp.db.session() as s:
        (new_person,) = s.scalars(select(Person.id)).all()
    assert new_person != person_id
