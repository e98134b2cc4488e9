"""When the IdP cannot be asked to forget the person, the deletion says so and keeps the
portal session, so pressing delete again finishes the work (portal/deletion.py)."""

from __future__ import annotations

from portal.session import ID_TOKEN
from tests.consent.conftest import link_city
from tests.portal.test_portal_life import PARENT, Stack, consented_codes, sign_in, stack  # noqa: F401


def test_idp_unreachable_keeps_the_person_signed_in_to_try_again(stack: Stack) -> None:  # noqa: F811
    client = stack.client
    link_city(client, stack.tokens, PARENT, "P-1")
    stack.load(("P-1", "w-p1"))
    csrf = sign_in(client, PARENT)
    with client.session_transaction() as sess:
        sess[ID_TOKEN] = "an.id.token"  # the test issuer publishes keys, no discovery document
    resp = client.post("/me/delete", data={"csrf": csrf, "understood": "1"})
    assert resp.status_code == 503
    text = resp.get_data(as_text=True)
    assert "認証基盤のサインイン情報をいま削除できませんでした" in text
    # The records and consents are gone; the person is still signed in to press delete again.
    assert stack.stored("P-1") == 0 and consented_codes(client, stack.tokens) == []
    assert client.get("/me/delete").status_code == 200
