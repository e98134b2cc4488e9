"""The card-verified attributes reach only the portal's back-channel code exchange, only after
a card sign-in, only when asked (idp/link_attributes.py)."""

from __future__ import annotations

from flask import Flask

from idp import demo as idp_demo
from idp import link_attributes
from idp.card.sessions import create_card_session, take_verified
from idp.clients import get_client
from idp.context import ACR_CARD
from launcher.demo import connector_jwk
from tests.idp.card.conftest import ALICE, AuthorityEnv, CardIdp
from tests.idp.card.test_cli_sign import run, serve_on_issuer_port
from tests.idp.card.test_idp_app import idp_app  # noqa: F401 (the fixture)


def test_only_the_portal_gets_them_after_a_card_sign_in(
    idp_app: tuple[AuthorityEnv, Flask],  # noqa: F811
) -> None:
    env, app = idp_app
    env.card(name="linker")
    idp = CardIdp(env, app)
    with serve_on_issuer_port(app, env.settings.ports["idp"]):
        with idp.db.session() as s:
            cs = create_card_session(s, "login")
        out = run(
            idp,
            ["sign", cs.short_code, "--card", str(env.tmp / "linker.json"), "--pin-stdin"],
            "1234\nABC123\n",
        )
        assert out.exit_code == 0, out.output
    with idp.db.session() as s:
        signed_in = take_verified(s, cs.id)
    assert signed_in is not None
    idp_demo.load(idp.db, env.settings, connector_jwk=connector_jwk(env.settings))
    card = ACR_CARD
    with app.app_context(), idp.db.session() as s:
        portal = get_client(s, env.settings.option("PHR_CONSENT_CLIENT_ID"))
        app_client = get_client(s, "demo-vaccination-app")
        assert portal is not None and portal.first_party and app_client is not None
        got = link_attributes.for_portal(s, portal, signed_in.person_id, card, "1")
        assert got == {"phr_card_attributes": ALICE.as_dict()}
        assert link_attributes.for_portal(s, portal, signed_in.person_id, card, None) == {}
        weaker = "urn:phr:acr:dev"
        assert link_attributes.for_portal(s, portal, signed_in.person_id, weaker, "1") == {}
        assert link_attributes.for_portal(s, app_client, signed_in.person_id, card, "1") == {}
        assert link_attributes.for_portal(s, portal, "no-such-person", card, "1") == {}
