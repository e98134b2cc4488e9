"""Account deletion at the IdP for a person who signs in with a passkey (idp/erasure.py): the
passkey, its enrollment code, the card binding it was vouched by and every session go; the
passkey audit stays without the person's id; the phone's passkey no longer signs anyone in."""

from __future__ import annotations

from sqlalchemy import select

from idp.passkey.models import PasskeyAudit
from tests.idp.card.test_person_erase import dump
from tests.idp.conftest import basic, exchange
from tests.idp.passkey.conftest import PasskeyIdp
from tests.idp.passkey.test_passkey_flow import Phone, new_code, person  # noqa: F401 (fixture)


def test_erasing_a_passkey_person(pk: PasskeyIdp, person: str) -> None:  # noqa: F811
    phone = Phone(pk)
    assert phone.enroll(new_code(pk))["http"] == 200
    portal = pk.register_client("portal-like", phr_first_party=True, phr_sector="phr")
    req, html, verifier = phone.start_authorize(portal)
    signed = phone.passkey_sign_in(req, html)
    back = phone.finish(signed.get_json()["redirect"])
    id_token = exchange(pk.app, portal, back["code"][0], verifier).get_json()["id_token"]
    assert dump(pk.db).count(person) > 4  # passkey, enrollment code, binding, session, audit

    app_only = pk.register_client("third-party")
    api = pk.app.test_client()
    refused = api.post(
        "/person/erase",
        data={"id_token_hint": id_token},
        headers=basic(app_only["client_id"], app_only["client_secret"]),
    )
    assert refused.status_code == 403  # only a first-party client may ask
    erased = api.post(
        "/person/erase",
        data={"id_token_hint": id_token},
        headers=basic(portal["client_id"], portal["client_secret"]),
    )
    assert erased.get_json() == {"erased": True}

    assert person not in dump(pk.db)
    with pk.db.session() as s:
        kept = s.scalars(select(PasskeyAudit)).all()
        assert kept and all(a.person_id is None for a in kept)
    req, html, _ = phone.start_authorize(portal)
    again = phone.passkey_sign_in(req, html)
    assert again.status_code != 200  # the credential is unknown now
