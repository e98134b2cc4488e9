"""`phr idp rotate-data-key` (issue 20), on both databases, with the IdP serving throughout (no
restart): a passkey registered before the rotation still signs in after the old key is retired
(its user handle did not change), the card still reaches the same person (its binding did not
change), a sign-in made before the rotation stays signed in, counter staff still find the
person, and afterwards nothing in the database opens under the old key."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from idp.card.models import CardAttributes
from idp.data_keys import CARD_ATTRIBUTES, SIGNING_KEYS, DataKeys
from idp.models import SigningKey
from launcher.cli import main
from tests.idp.card.conftest import ALICE, CardIdp
from tests.idp.card.test_sessions import sign_in as card_sign_in
from tests.idp.conftest import code_request, pkce_pair
from tests.idp.passkey.conftest import PasskeyIdp, issue_code, shown_code, staff_sign_in
from tests.idp.passkey.test_passkey_flow import Phone, id_token_claims


def _passkey_sub(pk: PasskeyIdp, phone: Phone, rp: dict) -> str:
    """A fresh browser on the same phone (same authenticator) signs in with the passkey."""
    browser = Phone(pk, phone.authenticator)
    req, html, verifier = browser.start_authorize(rp)
    signed = browser.passkey_sign_in(req, html)
    assert signed.status_code == 200, signed.get_json()
    back = browser.finish(signed.get_json()["redirect"])
    return id_token_claims(pk, rp, back["code"][0], verifier)["sub"]


def _still_signed_in_sub(pk: PasskeyIdp, phone: Phone, rp: dict) -> str:
    """The browser signed in before: /authorize goes straight back to the client."""
    verifier, challenge = pkce_pair()
    resp = phone.client.get("/authorize?" + urlencode(code_request(rp, challenge)))
    location = urlsplit(resp.headers["Location"])
    assert location.netloc, resp.headers["Location"]  # not the sign-in page
    code = parse_qs(location.query)["code"][0]
    return id_token_claims(pk, rp, code, verifier)["sub"]


def _secret(pk: PasskeyIdp) -> str:
    return pk.env.settings.secret("PHR_IDP_DATA_KEY")


def test_data_key_rotation_keeps_passkeys_cards_and_sessions(
    pk: PasskeyIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in pk.env.settings.environ.items():
        monkeypatch.setenv(k, v)
    pk.add_staff()
    staff = pk.app.test_client()
    staff_sign_in(staff)

    def new_code(_: PasskeyIdp) -> str:
        return shown_code(issue_code(staff, ALICE).get_data(as_text=True))

    person = pk.enroll_with_card(ALICE)
    phone = Phone(pk)
    assert phone.enroll(new_code(pk))["http"] == 200
    rp = pk.register_client()
    sub = _passkey_sub(pk, phone, rp)
    signed_in = Phone(pk, phone.authenticator)
    req, html, _ = signed_in.start_authorize(rp)
    signed_in.finish(signed_in.passkey_sign_in(req, html).get_json()["redirect"])
    old_key = _secret(pk)

    out = CliRunner().invoke(main, ["idp", "rotate-data-key"])
    assert out.exit_code == 0, out.output
    new_key = _secret(pk).split()[0]
    assert _secret(pk).split() == [new_key, old_key] and new_key != old_key
    # Mid-rotation: everything made before and after works, the person is found by staff
    # (indexed under the old key) and a code is issued under the new one.
    assert _passkey_sub(pk, phone, rp) == sub
    assert (
        card_sign_in(CardIdp(pk.env, pk.app), pk.app.test_client(), pk.cards["card"]).person_id
        == person
    )
    code = new_code(pk)

    refused = CliRunner().invoke(main, ["idp", "rotate-data-key", "--retire"])
    assert refused.exit_code != 0 and "--force" in refused.output  # the overlap is not over
    out = CliRunner().invoke(main, ["idp", "rotate-data-key", "--retire", "--force"])
    assert out.exit_code == 0, out.output
    assert "re-sealed 4 signing key(s) and 1 person(s)' card attributes" in out.output
    kept = _secret(pk).split()
    assert kept[0] == new_key and len(kept) == 2 and old_key not in _secret(pk)

    # After the retirement, with the same running IdP (its key cache reloaded).
    pk.app.extensions["idp"].keys.refresh()
    assert _passkey_sub(pk, phone, rp) == sub  # the registered passkey's handle is unchanged
    assert _still_signed_in_sub(pk, signed_in, rp) == sub
    again = card_sign_in(CardIdp(pk.env, pk.app), pk.app.test_client(), pk.cards["card"])
    assert again.person_id == person and not again.enrolled
    second = Phone(pk)  # a second passkey with the code issued mid-rotation
    assert second.enroll(code)["http"] == 200
    assert _passkey_sub(pk, second, rp) == sub
    assert new_code(pk)  # staff still find the person (re-indexed under the new key)

    # Nothing left that the old key opens; all of it opens under the new one.
    old, new = DataKeys(old_key), DataKeys(new_key)
    with pk.db.session() as s:
        sealed = s.scalar(select(CardAttributes.sealed))
        keys = s.scalars(select(SigningKey)).all()
    assert sealed is not None
    with pytest.raises(InvalidTag):
        old.aead(CARD_ATTRIBUTES).decrypt(sealed[1:13], sealed[13:], person.encode())
    new.aead(CARD_ATTRIBUTES).decrypt(sealed[1:13], sealed[13:], person.encode())
    for row in keys:
        with pytest.raises(InvalidTag):
            old.aead(SIGNING_KEYS).decrypt(
                row.private_sealed[:12], row.private_sealed[12:], row.kid.encode()
            )
