"""Card sessions at the IdP, end to end over its HTTP endpoints: enrollment, sign-in, renewal,
and every way a response can be refused. Real authority on loopback, real database (SQLite and
PostgreSQL when configured)."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient
from sqlalchemy import select, update

from idp import housekeeping
from idp.card.models import CardAttributes, CardAudit, CardBinding, CardSession
from idp.card.profile import AUTH, SIGN, signed_data
from idp.card.services import read_attributes
from idp.card.sessions import (
    ACR_CARD,
    CardSignIn,
    create_card_session,
    display_code,
    session_qr_svg,
    take_verified,
)
from idp.card.vcard import VirtualCard
from idp.card.views import services
from idp.models import Person
from tests.idp.card.conftest import ALICE, AUTH_PIN, BOB, SIGN_PIN, CardIdp


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def open_session(idp: CardIdp) -> CardSession:
    with idp.db.session() as s:
        return create_card_session(s, "login")


def respond(
    client: FlaskClient,
    session: CardSession,
    card: VirtualCard,
    *,
    enroll: bool = False,
    sign_card: VirtualCard | None = None,
    ref: str | None = None,
):  # type: ignore[no-untyped-def]
    info = client.get(f"/card/sessions/{ref or session.short_code}").get_json()
    data = signed_data(info["origin"], info["session_id"], info["challenge"])
    body = {
        "certificate": b64(card.certificate_der(AUTH)),
        "signature": b64(card.sign(AUTH, AUTH_PIN, data)),
    }
    if enroll:
        sc = sign_card or card
        body["signature_certificate"] = b64(sc.certificate_der(SIGN))
        body["signature_signature"] = b64(sc.sign(SIGN, SIGN_PIN, data))
    return client.post(f"/card/sessions/{session.id}/response", json=body), body


def sign_in(idp: CardIdp, client: FlaskClient, card: VirtualCard) -> CardSignIn:
    """What the card reader does: authentication certificate first, both when enrolling."""
    session = open_session(idp)
    resp, _ = respond(client, session, card)
    if resp.status_code == 409 and resp.get_json()["error"] == "enrollment_required":
        resp, _ = respond(client, session, card, enroll=True, ref=session.id)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"status": "verified"}
    with idp.db.session() as s:
        result = take_verified(s, session.id)
    assert result is not None
    return result


def error_of(resp) -> str:  # type: ignore[no-untyped-def]
    body = resp.get_json()
    assert set(body) == {"error", "error_description"}
    return body["error"]


def test_enroll_sign_in_renew_same_person(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    card = card_idp.env.card(ALICE)

    first = sign_in(card_idp, client, card)
    assert first.enrolled and first.acr == ACR_CARD and first.amr == ["sc", "pin", "hwk"]
    assert first.revocation_method == "ocsp"

    second = sign_in(card_idp, client, card)  # authentication certificate only
    assert second.person_id == first.person_id and not second.enrolled

    old_auth = card.certificate_der(AUTH)
    card_idp.env.renew(card)
    renewed = sign_in(card_idp, client, card)
    assert renewed.person_id == first.person_id and not renewed.enrolled
    again = sign_in(card_idp, client, card)
    assert again.person_id == first.person_id

    with card_idp.db.session() as s:
        assert s.scalar(select(Person).where(Person.id == first.person_id)) is not None
        assert len(s.scalars(select(Person)).all()) == 1
        bindings = s.scalars(select(CardBinding)).all()
        assert sorted((b.cert_type, b.status, b.binding_method) for b in bindings) == [
            ("auth", "active", "renewal_link"),
            ("auth", "superseded", "enrollment"),
            ("sign", "active", "renewal_link"),
            ("sign", "superseded", "enrollment"),
        ]
        # attributes: stored encrypted, readable with the IdP's key
        sealed = s.get(CardAttributes, first.person_id).sealed  # type: ignore[union-attr]
        assert ALICE.name.encode() not in sealed and b"1990-04-01" not in sealed
        assert read_attributes(s, services_for(card_idp), first.person_id) == ALICE
        events = [(a.event, a.outcome, a.code) for a in s.scalars(select(CardAudit))]
    assert ("enrollment", "success", None) in events
    assert ("renewal", "success", None) in events
    assert ("sign_in", "failure", "enrollment_required") in events

    # the old card's certificate no longer signs anyone in
    session = open_session(card_idp)
    info = client.get(f"/card/sessions/{session.id}").get_json()
    data = signed_data(info["origin"], session.id, info["challenge"])
    key_holder = card_idp.env.card(BOB, name="unused")  # any key: refused before the signature
    resp = client.post(
        f"/card/sessions/{session.id}/response",
        json={
            "certificate": b64(old_auth),
            "signature": b64(key_holder.sign(AUTH, AUTH_PIN, data)),
        },
    )
    assert resp.status_code == 403 and error_of(resp) in ("bad_signature", "certificate_superseded")


def services_for(idp: CardIdp):  # type: ignore[no-untyped-def]
    with idp.app.app_context():
        return services()


def test_two_people_are_two_persons(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    alice = sign_in(card_idp, client, card_idp.env.card(ALICE, name="alice"))
    bob = sign_in(card_idp, client, card_idp.env.card(BOB, name="bob"))
    assert alice.person_id != bob.person_id


def test_renewal_link_pointing_at_another_person_is_refused(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    alice_card = card_idp.env.card(ALICE, name="alice")
    sign_in(card_idp, client, alice_card)
    bob_card = card_idp.env.card(BOB, name="bob")
    # A (validly signed) link claiming Bob's new card renews Alice's.
    card_idp.env.authority.publish_link(alice_card.certificate(AUTH), bob_card.certificate(AUTH))
    session = open_session(card_idp)
    resp, _ = respond(client, session, bob_card)
    assert error_of(resp) == "enrollment_required"
    resp, _ = respond(client, session, bob_card, enroll=True, ref=session.id)
    assert resp.status_code == 403 and error_of(resp) == "renewal_person_mismatch"
    body = resp.get_json()["error_description"]
    assert ALICE.name not in body and "会津" not in body
    with card_idp.db.session() as s:
        assert take_verified(s, session.id) is None
        assert len(s.scalars(select(Person)).all()) == 1  # Bob was not merged nor created


def test_signature_certificate_of_another_card_is_refused(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    alice = card_idp.env.card(ALICE, name="alice")
    bob = card_idp.env.card(BOB, name="bob")
    session = open_session(card_idp)
    resp, _ = respond(client, session, alice, enroll=True, sign_card=bob)
    assert resp.status_code == 403 and error_of(resp) == "certificates_not_paired"


def test_replayed_response_is_refused(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    card = card_idp.env.card()
    sign_in(card_idp, client, card)
    session = open_session(card_idp)
    resp, body = respond(client, session, card)
    assert resp.status_code == 200
    again = client.post(f"/card/sessions/{session.id}/response", json=body)
    assert again.status_code == 409 and error_of(again) == "challenge_used"
    # and the signature is worthless for any other session
    other = open_session(card_idp)
    moved = client.post(f"/card/sessions/{other.id}/response", json=body)
    assert moved.status_code == 403 and error_of(moved) == "bad_signature"
    # the result is taken once
    with card_idp.db.session() as s:
        assert take_verified(s, session.id) is not None
    with card_idp.db.session() as s:
        assert take_verified(s, session.id) is None
        assert take_verified(s, other.id) is None  # failed sessions yield nothing


def test_expired_challenge(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    card = card_idp.env.card()
    session = open_session(card_idp)
    info = client.get(f"/card/sessions/{session.id}").get_json()
    with card_idp.db.session() as s:
        s.execute(
            update(CardSession)
            .where(CardSession.id == session.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    resp = client.get(f"/card/sessions/{session.id}")
    assert resp.status_code == 410 and error_of(resp) == "challenge_expired"
    data = signed_data(info["origin"], session.id, info["challenge"])
    posted = client.post(
        f"/card/sessions/{session.id}/response",
        json={
            "certificate": b64(card.certificate_der(AUTH)),
            "signature": b64(card.sign(AUTH, AUTH_PIN, data)),
        },
        headers={"Accept-Language": "en"},
    )
    assert posted.status_code == 410 and error_of(posted) == "challenge_expired"
    assert "expired" in posted.get_json()["error_description"]
    status = client.get(f"/card/sessions/{session.id}/status").get_json()
    assert status["status"] == "failed" and status["error"] == "challenge_expired"


def test_revoked_card_is_refused_with_its_message(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    card = card_idp.env.card()
    card_idp.env.authority.revoke(card.certificate(AUTH), "key_compromise")
    session = open_session(card_idp)
    resp, _ = respond(client, session, card)
    assert resp.status_code == 403 and error_of(resp) == "certificate_revoked"
    assert "失効" in resp.get_json()["error_description"]
    status = client.get(
        f"/card/sessions/{session.id}/status", headers={"Accept-Language": "en"}
    ).get_json()
    assert status == {
        "status": "failed",
        "error": "certificate_revoked",
        "message": "This certificate has been revoked. Please contact your city office.",
    }


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"certificate": "not base64!", "signature": "AAAA"},
        {"certificate": "AAAA", "signature": 5},
        {"certificate": "AAAA", "signature": "AAAA", "signature_certificate": "AAAA"},
    ],
)
def test_malformed_responses(card_idp: CardIdp, body: object) -> None:
    client = card_idp.app.test_client()
    session = open_session(card_idp)
    resp = client.post(f"/card/sessions/{session.id}/response", json=body)
    assert resp.status_code == 400 and error_of(resp) == "malformed_request"
    # a malformed post does not use the challenge up
    assert client.get(f"/card/sessions/{session.id}").status_code == 200


def test_unknown_session(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    assert error_of(client.get("/card/sessions/ABCD-EFGH")) == "session_not_found"
    resp = client.post(
        "/card/sessions/nope/response", json={"certificate": "AA", "signature": "AA"}
    )
    assert resp.status_code == 404 and error_of(resp) == "session_not_found"


def test_short_code_qr_and_status(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    session = open_session(card_idp)
    code = display_code(session)
    assert len(code) == 9 and code[4] == "-"
    info = client.get(f"/card/sessions/{code.lower()}").get_json()
    assert info["session_id"] == session.id
    assert info["origin"] == card_idp.settings.issuer
    assert datetime.fromisoformat(info["expires_at"]) <= datetime.now(UTC) + timedelta(minutes=5)
    svg = session_qr_svg(card_idp.settings.issuer, session)
    assert svg.startswith("<svg") and "</svg>" in svg
    qr = client.get(f"/card/sessions/{session.id}/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert qr.get_data(as_text=True) == svg
    status = client.get(f"/card/sessions/{session.id}/status").get_json()
    assert status["status"] == "pending" and status["message"]
    # only a pending session has a QR code
    assert client.get("/card/sessions/no-such-session/qr.svg").status_code == 404
    done, _ = respond(client, session, card_idp.env.card(), enroll=True)
    assert done.status_code == 200
    assert client.get(f"/card/sessions/{session.id}/qr.svg").status_code == 404


def test_no_serial_fingerprint_or_personal_data_leaks(
    card_idp: CardIdp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = card_idp.app.test_client()
    card = card_idp.env.card(ALICE)
    sign_in(card_idp, client, card)
    revoked = card_idp.env.card(BOB, name="bob")
    card_idp.env.authority.revoke(revoked.certificate(AUTH))
    session = open_session(card_idp)
    resp, _ = respond(client, session, revoked)
    assert resp.status_code == 403

    secrets_ = set()
    for c in (card, revoked):
        for kind in (AUTH, SIGN):
            cert = c.certificate(kind)
            secrets_ |= {
                format(cert.serial_number, "x"),
                str(cert.serial_number),
                cert.fingerprint(
                    __import__("cryptography").hazmat.primitives.hashes.SHA256()
                ).hex(),
            }
    secrets_ |= {ALICE.name, ALICE.address, BOB.name, BOB.address}
    with card_idp.db.session() as s:
        rows = [
            " ".join(str(v) for v in (a.event, a.outcome, a.code, a.session_id, a.person_id))
            for a in s.scalars(select(CardAudit))
        ]
        keys = [b.cert_key for b in s.scalars(select(CardBinding))]
    texts = [caplog.text, resp.get_data(as_text=True), *rows, *keys]
    for text in texts:
        for secret in secrets_:
            assert secret not in text
    assert any("failure" in r for r in rows) and any("success" in r for r in rows)
    # the binding key is a keyed hash, not the plain fingerprint
    plain = card.certificate(AUTH).public_bytes(serialization.Encoding.DER)
    assert __import__("hashlib").sha256(plain).hexdigest() not in keys


def test_a_verified_session_must_be_taken_soon(card_idp: CardIdp) -> None:
    client = card_idp.app.test_client()
    card = card_idp.env.card()
    sign_in(card_idp, client, card)
    session = open_session(card_idp)
    resp, _ = respond(client, session, card)
    assert resp.status_code == 200
    with card_idp.db.session() as s:
        s.execute(
            update(CardSession)
            .where(CardSession.id == session.id)
            .values(verified_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    with card_idp.db.session() as s:
        assert take_verified(s, session.id) is None


def test_purge_old_sessions(card_idp: CardIdp) -> None:
    old, fresh = open_session(card_idp), open_session(card_idp)
    with card_idp.db.session() as s:
        s.execute(
            update(CardSession)
            .where(CardSession.id == old.id)
            .values(expires_at=datetime.now(UTC) - timedelta(days=2))
        )
    with card_idp.db.session() as s:
        assert housekeeping.purge(s)["card sessions"] == 1
        assert s.get(CardSession, old.id) is None and s.get(CardSession, fresh.id) is not None


def _forge(client: FlaskClient, idp: CardIdp, victim: VirtualCard, forger: VirtualCard):  # type: ignore[no-untyped-def]
    """A response with the victim's (public) certificate and a signature by another key."""
    session = open_session(idp)
    info = client.get(f"/card/sessions/{session.short_code}").get_json()
    data = signed_data(info["origin"], info["session_id"], info["challenge"])
    forged = {
        "certificate": b64(victim.certificate_der(AUTH)),
        "signature": b64(forger.sign(AUTH, AUTH_PIN, data)),  # not the victim's key
    }
    return client.post(f"/card/sessions/{session.id}/response", json=forged)


def test_a_certificate_without_its_key_cannot_lock_its_holder_out(card_idp: CardIdp) -> None:
    """Issue 14, item 6: anyone may hold a person's authentication certificate (it is public).
    Signatures that do not verify count against the *source* that sent them (limits.CARD_SOURCE):
    after the allowance that source is paused, with its own message and audit record, while the
    person signs in as usual from anywhere else, and is never counted. Reopening the window lets
    the source in again."""
    from idp import limits
    from idp.models import Attempt

    client = card_idp.app.test_client()
    attacker = card_idp.app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    alice, bob = card_idp.env.card(ALICE, name="alice"), card_idp.env.card(BOB, name="bob")
    person = sign_in(card_idp, client, alice).person_id
    sign_in(card_idp, client, bob)
    _, allowed, _ = limits.CARD_SOURCE
    assert allowed > limits.SIGN_IN[1]  # more than the old per-person allowance
    for _ in range(allowed):
        resp = _forge(attacker, card_idp, alice, bob)
        assert resp.status_code == 403 and error_of(resp) == "bad_signature"
    # The person is not paused: a correct signature from another source works at once.
    assert sign_in(card_idp, client, alice).person_id == person
    # The source is: even a genuine card answering from there is refused for the window.
    session = open_session(card_idp)
    paused, _ = respond(attacker, session, bob)
    assert paused.status_code == 429 and error_of(paused) == "too_many_attempts"
    assert "15" in paused.get_json()["error_description"]
    status = client.get(f"/card/sessions/{session.id}/status").get_json()
    assert status["status"] == "failed" and status["error"] == "too_many_attempts"
    with card_idp.db.session() as s:
        codes = list(s.scalars(select(CardAudit.code).where(CardAudit.outcome == "failure")))
        assert codes.count("too_many_attempts") == 1 and codes.count("bad_signature") == allowed
        assert s.get(Attempt, f"sign-in:{person}") is None
        row = s.get(Attempt, "card-source:203.0.113.9")
        assert row is not None and row.failures == allowed
        row.window_start = datetime.now(UTC) - timedelta(hours=1)  # the window has passed
    again, _ = respond(attacker, open_session(card_idp), bob)
    assert again.status_code == 200


def test_after_proof_of_possession_failures_count_for_the_person(card_idp: CardIdp) -> None:
    """The per-person pause (limits.SIGN_IN) still exists, for failures only the holder of the
    card's key can cause: a valid authentication signature with another card's signature
    certificate. After the allowance the person is paused from every source."""
    from idp import limits

    client = card_idp.app.test_client()
    elsewhere = card_idp.app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    alice, bob = card_idp.env.card(ALICE, name="alice"), card_idp.env.card(BOB, name="bob")
    sign_in(card_idp, client, alice)
    sign_in(card_idp, client, bob)
    _, allowed, _ = limits.SIGN_IN
    for _ in range(allowed):
        resp, _ = respond(client, open_session(card_idp), alice, enroll=True, sign_card=bob)
        assert resp.status_code == 403 and error_of(resp) == "certificates_not_paired"
    paused, _ = respond(elsewhere, open_session(card_idp), alice)
    assert paused.status_code == 429 and error_of(paused) == "too_many_attempts"
    sign_in(card_idp, elsewhere, bob)  # someone else is not affected
