"""Issue 20: card verifications counted by event and outcome (`phr_card_verifications_total`,
the card audit's codes), and the card flow's log lines free of PINs and card attributes."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from idp.card.profile import AUTH, signed_data
from tests.idp.card.conftest import ALICE, AUTH_PIN, BOB, SIGN_PIN, CardIdp
from tests.idp.card.test_sessions import b64, error_of, open_session, sign_in
from tests.phr_core.test_logs import Lines


def _count(event: str, outcome: str) -> float:
    labels = {"event": event, "outcome": outcome}
    return REGISTRY.get_sample_value("phr_card_verifications_total", labels) or 0.0


def test_verifications_by_outcome_and_no_pin_in_the_logs(card_idp: CardIdp) -> None:
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    level = root.level
    root.setLevel(logging.DEBUG)
    before = {k: _count(*k) for k in [("enrollment", "ok"), ("sign_in", "ok"),
                                       ("sign_in", "enrollment_required"),
                                       ("sign_in", "bad_signature")]}  # fmt: skip
    try:
        client = card_idp.app.test_client()
        alice = card_idp.env.card(ALICE, name="alice")
        sign_in(card_idp, client, alice)  # enrolls: refused first, then enrolled
        sign_in(card_idp, client, alice)
        session = open_session(card_idp)
        info = client.get(f"/card/sessions/{session.short_code}").get_json()
        data = signed_data(info["origin"], info["session_id"], info["challenge"])
        forger = card_idp.env.card(BOB, name="bob")  # Bob's key, under Alice's certificate
        body = {
            "certificate": b64(alice.certificate_der(AUTH)),
            "signature": b64(forger.sign(AUTH, AUTH_PIN, data)),
        }
        resp = client.post(f"/card/sessions/{session.id}/response", json=body)
        assert error_of(resp) == "bad_signature"
    finally:
        root.removeHandler(lines)
        root.setLevel(level)
    grew = {k: _count(*k) - v for k, v in before.items()}
    assert grew[("enrollment", "ok")] == 1 and grew[("sign_in", "enrollment_required")] == 1
    assert grew[("sign_in", "ok")] == 1 and grew[("sign_in", "bad_signature")] == 1
    assert lines.lines, "the card flow logs its outcomes"
    secrets = (SIGN_PIN, ALICE.name, ALICE.birthdate, ALICE.address, BOB.name)
    for event in lines.events():
        said = [str(v) for k, v in event.items() if k not in ("ts", "request_id")]
        for value in said:
            assert AUTH_PIN not in value, event
            assert not any(s in value for s in secrets), event
