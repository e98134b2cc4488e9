"""The person's side, over HTTP with a software authenticator: enrolling a passkey with a
staff-issued code, signing in to a client through the real authorization flow (ID token with
the passkey acr/amr), stepping up to the card when a client needs it, and every refusal with
its own message and audit record."""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from idp import limits
from idp.card.models import CardSession
from idp.card.profile import BasicAttributes
from idp.context import ACR_CARD, ACR_PASSKEY
from idp.models import Attempt, LoginSession
from idp.passkey import ceremonies, views
from idp.passkey.errors import FAILURES
from idp.passkey.models import EnrollmentCode, Passkey, PasskeyAudit, PasskeyChallenge
from idp.tokens import now_utc, sha256_hex
from tests.idp.card.conftest import ALICE, BOB
from tests.idp.card.test_sessions import respond
from tests.idp.conftest import code_request, exchange, pkce_pair
from tests.idp.passkey.authenticator import SoftAuthenticator
from tests.idp.passkey.conftest import (
    PasskeyIdp,
    data_csrf,
    issue_code,
    make_passkey_idp,
    shown_code,
    staff_sign_in,
)

ATTACKER = "203.0.113.9"


def new_code(pk: PasskeyIdp) -> str:
    return new_code_for(pk, ALICE)


def new_code_for(pk: PasskeyIdp, attrs: BasicAttributes) -> str:
    staff = pk.app.test_client()
    staff_sign_in(staff)
    return shown_code(issue_code(staff, attrs).get_data(as_text=True))


@pytest.fixture
def person(pk: PasskeyIdp) -> str:
    pk.add_staff()
    return pk.enroll_with_card(ALICE)


class Phone:
    """The person's phone browser at the IdP."""

    def __init__(self, pk: PasskeyIdp, authenticator: SoftAuthenticator | None = None) -> None:
        self.pk = pk
        self.client: FlaskClient = pk.app.test_client()
        self.authenticator = authenticator or pk.authenticator()
        self.csrf = ""

    def open_enroll(self, lang: str = "ja") -> str:
        html = self.client.get(f"/passkey/enroll?lang={lang}").get_data(as_text=True)
        self.csrf = data_csrf(html)
        return html

    def post(self, path: str, body: dict, csrf: str | None = None):  # type: ignore[no-untyped-def]
        return self.client.post(
            path, json=body, headers={"X-CSRF-Token": self.csrf if csrf is None else csrf}
        )

    def enroll_options(self, code: str):  # type: ignore[no-untyped-def]
        if not self.csrf:
            self.open_enroll()
        return self.post("/passkey/enroll/options", {"code": code})

    def enroll(self, code: str, **kw: object) -> dict:
        options = self.enroll_options(code)
        assert options.status_code == 200, options.get_json()
        credential = self.authenticator.create(options.get_json(), **kw)  # type: ignore[arg-type]
        resp = self.post("/passkey/enroll/verify", {"credential": credential})
        return {**resp.get_json(), "http": resp.status_code, "credential": credential}

    def start_authorize(self, rp: dict, **extra: str) -> tuple[str, str, str]:
        """Follow /authorize to the login page; returns (req, login page html, verifier)."""
        verifier, challenge = pkce_pair()
        params = code_request(rp, challenge, **extra)
        resp = self.client.get("/authorize?" + urlencode(params))
        assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
        location = urlsplit(resp.headers["Location"])
        assert location.path == "/login", resp.headers["Location"]
        req = parse_qs(location.query)["req"][0]
        html = self.client.get(f"/login?req={req}").get_data(as_text=True)
        return req, html, verifier

    def passkey_options(self, req: str, html: str):  # type: ignore[no-untyped-def]
        self.csrf = data_csrf(html[html.index('id="passkey-login"') :])
        return self.post(f"/passkey/login/options?req={req}", {})

    def passkey_sign_in(self, req: str, html: str, **kw: object):  # type: ignore[no-untyped-def]
        options = self.passkey_options(req, html)
        assert options.status_code == 200, options.get_json()
        assertion = self.authenticator.get(options.get_json(), **kw)  # type: ignore[arg-type]
        return self.post(f"/passkey/login/verify?req={req}", {"credential": assertion})

    def finish(self, redirect_to: str) -> dict[str, list[str]]:
        """Follow the redirects after sign-in (consent allowed) back to the client."""
        resp = self.client.get(redirect_to)
        for _ in range(6):
            location = resp.headers["Location"]
            parts = urlsplit(location)
            if parts.netloc:
                return parse_qs(parts.query)
            if parts.path == "/consent":
                page = self.client.get(location).get_data(as_text=True)
                csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
                req = parse_qs(parts.query)["req"][0]
                resp = self.client.post(
                    "/consent", data={"csrf": csrf, "req": req, "decision": "allow"}
                )
            else:
                resp = self.client.get(location)
        raise AssertionError("too many redirects")


def id_token_claims(pk: PasskeyIdp, rp: dict, code: str, verifier: str) -> dict:
    resp = exchange(pk.app, rp, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    payload = resp.get_json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def audit_codes(pk: PasskeyIdp, event: str) -> list[str | None]:
    with pk.db.session() as s:
        rows = s.scalars(
            select(PasskeyAudit).where(PasskeyAudit.event == event).order_by(PasskeyAudit.id)
        )
        return [r.code for r in rows]


# --- enrollment --------------------------------------------------------------------------------


def test_enroll_then_sign_in_to_a_client(pk: PasskeyIdp, person: str, caplog) -> None:
    caplog.set_level(logging.INFO)
    phone = Phone(pk)
    html = phone.open_enroll()
    assert "パスキーの登録" in html and 'id="passkey-enroll"' in html
    code = new_code(pk)
    options = phone.enroll_options(code.lower().replace("-", " "))  # as typed on a phone
    body = options.get_json()
    assert options.status_code == 200, body
    assert body["rp"]["id"] == "localhost"
    assert body["authenticatorSelection"]["userVerification"] == "required"
    assert body["authenticatorSelection"]["residentKey"] == "required"
    assert person not in json.dumps(body) and ALICE.name not in json.dumps(body)
    credential = phone.authenticator.create(body)
    done = phone.post("/passkey/enroll/verify", {"credential": credential})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "registered"
    with pk.db.session() as s:
        stored = s.scalar(select(Passkey))
        assert stored is not None and stored.person_id == person
        assert stored.transports == ["internal", "hybrid"] and stored.device_type == "single_device"
        assert s.scalar(select(EnrollmentCode.used_at)) is not None

    rp = pk.register_client()
    req, login_html, verifier = phone.start_authorize(rp)
    assert "パスキーでサインイン" in login_html and 'id="card-signin"' in login_html
    signed = phone.passkey_sign_in(req, login_html)
    assert signed.status_code == 200, signed.get_json()
    back = phone.finish(signed.get_json()["redirect"])
    claims = id_token_claims(pk, rp, back["code"][0], verifier)
    assert claims["acr"] == ACR_PASSKEY == "urn:phr:acr:passkey"
    assert claims["amr"] == ["hwk", "user"]
    with pk.db.session() as s:
        stored = s.scalar(select(Passkey))
        assert stored is not None and stored.sign_count == 1 and stored.last_used_at is not None
    assert audit_codes(pk, "passkey_registered") == [None]
    assert audit_codes(pk, "passkey_sign_in") == [None]
    assert code not in caplog.text and person not in caplog.text


def test_a_synced_passkey_is_a_software_key(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk, pk.authenticator(synced=True))
    assert phone.enroll(new_code(pk))["http"] == 200
    rp = pk.register_client()
    req, html, verifier = phone.start_authorize(rp)
    back = phone.finish(phone.passkey_sign_in(req, html).get_json()["redirect"])
    claims = id_token_claims(pk, rp, back["code"][0], verifier)
    assert claims["acr"] == ACR_PASSKEY and claims["amr"] == ["swk", "user"]


def test_wrong_expired_and_used_codes(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    wrong = phone.enroll_options("ABCDE-FGHJK")
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "code_wrong"
    assert "登録コードが正しくありません" in wrong.get_json()["message"]
    garbage = phone.enroll_options("not a code at all")
    assert garbage.get_json()["error"] == "code_wrong"

    code = new_code(pk)
    assert phone.enroll(code)["http"] == 200
    used = Phone(pk).enroll_options(code)
    assert used.status_code == 409 and used.get_json()["error"] == "code_used"

    expiring = new_code(pk)
    with pk.db.session() as s:
        s.execute(
            update(EnrollmentCode)
            .where(EnrollmentCode.used_at.is_(None))
            .values(expires_at=now_utc() - timedelta(seconds=1))
        )
    expired = Phone(pk).enroll_options(expiring)
    assert expired.status_code == 410 and expired.get_json()["error"] == "code_expired"
    assert "15分" in expired.get_json()["message"]
    assert audit_codes(pk, "code_entered") == [
        "code_wrong",
        "code_wrong",
        None,
        "code_used",
        "code_expired",
    ]


def test_code_expiring_between_options_and_verify(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    options = phone.enroll_options(new_code(pk))
    credential = phone.authenticator.create(options.get_json())
    with pk.db.session() as s:
        s.execute(update(EnrollmentCode).values(expires_at=now_utc() - timedelta(seconds=1)))
    resp = phone.post("/passkey/enroll/verify", {"credential": credential})
    assert resp.status_code == 410 and resp.get_json()["error"] == "code_expired"
    with pk.db.session() as s:
        assert s.scalar(select(Passkey)) is None


def test_guessing_codes_is_stopped(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    for _ in range(10):
        assert phone.enroll_options("ZZZZZ-ZZZZZ").get_json()["error"] == "code_wrong"
    code = new_code(pk)
    blocked = phone.enroll_options(code)
    assert blocked.status_code == 429 and blocked.get_json()["error"] == "too_many_attempts"


def test_code_guesses_count_per_client_behind_a_trusted_proxy(pk: PasskeyIdp, person: str) -> None:
    """Behind HAProxy (replicas) every request comes from the balancer: with it trusted
    (PHR_IDP_TRUSTED_PROXIES), one client's guesses block that client, not everyone."""
    pk.app.extensions["idp"].trusted_proxies = limits.parse_proxies("127.0.0.1")
    guesser, other = Phone(pk), Phone(pk)
    guesser.client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
    other.client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.9"
    for _ in range(10):
        assert guesser.enroll_options("ZZZZZ-ZZZZZ").get_json()["error"] == "code_wrong"
    assert guesser.enroll_options("ZZZZZ-ZZZZZ").status_code == 429
    assert other.enroll_options(new_code(pk)).status_code == 200


def test_enrollment_needs_the_csrf_header(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    phone.open_enroll()
    resp = phone.post("/passkey/enroll/options", {"code": new_code(pk)}, csrf="forged")
    assert resp.status_code == 400 and resp.get_json()["error"] == "csrf"


def test_registration_refusals(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    code = new_code(pk)
    no_uv = phone.enroll(code, uv=False)
    assert no_uv["http"] == 400 and no_uv["error"] == "user_verification_required"
    # The code is still good; a fresh challenge is needed (the old one is used up).
    replay = phone.post("/passkey/enroll/verify", {"credential": no_uv["credential"]})
    assert replay.status_code == 409 and replay.get_json()["error"] == "challenge_used"
    other_site = phone.enroll(code, origin="https://evil.example")
    assert other_site["http"] == 400 and other_site["error"] == "wrong_origin"
    malformed = phone.post("/passkey/enroll/verify", {"credential": {"id": "x"}})
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "malformed_request"
    ok = phone.enroll(code)
    assert ok["http"] == 200
    replay_ok = phone.post("/passkey/enroll/verify", {"credential": ok["credential"]})
    assert replay_ok.get_json()["error"] == "challenge_used"
    assert audit_codes(pk, "passkey_registered") == [
        "user_verification_required",
        "challenge_used",
        "wrong_origin",
        "malformed_request",
        None,
        "challenge_used",
    ]


def test_one_code_registers_one_passkey(pk: PasskeyIdp, person: str) -> None:
    """Two devices that both got options for one code: the first registration uses it up."""
    code = new_code(pk)
    first, second = Phone(pk), Phone(pk)
    first_options = first.enroll_options(code).get_json()
    second_options = second.enroll_options(code).get_json()
    ok = first.post(
        "/passkey/enroll/verify", {"credential": first.authenticator.create(first_options)}
    )
    late = second.post(
        "/passkey/enroll/verify", {"credential": second.authenticator.create(second_options)}
    )
    assert ok.status_code == 200 and late.status_code == 409
    assert late.get_json()["error"] == "code_used"
    with pk.db.session() as s:
        assert len(s.scalars(select(Passkey)).all()) == 1


def test_a_registered_credential_cannot_be_registered_again(pk: PasskeyIdp, person: str) -> None:
    phone = Phone(pk)
    assert phone.enroll(new_code(pk))["http"] == 200
    code = new_code(pk)
    options = phone.enroll_options(code).get_json()
    excluded = [c["id"] for c in options["excludeCredentials"]]
    assert excluded == [phone.authenticator.create(options)["id"]]
    again = phone.post(
        "/passkey/enroll/verify", {"credential": phone.authenticator.create(options)}
    )
    assert again.status_code == 400 and again.get_json()["error"] == "registration_failed"
    with pk.db.session() as s:
        latest = s.scalars(select(EnrollmentCode).order_by(EnrollmentCode.created_at)).all()[-1]
        assert latest.used_at is None  # the refusal did not use the code up


# --- sign-in -------------------------------------------------------------------------------------


@pytest.fixture
def enrolled(pk: PasskeyIdp, person: str) -> Phone:
    phone = Phone(pk)
    assert phone.enroll(new_code(pk))["http"] == 200
    return phone


def test_sign_in_refusals(pk: PasskeyIdp, enrolled: Phone) -> None:
    rp = pk.register_client()
    phone = enrolled
    req, html, _ = phone.start_authorize(rp)

    stranger = Phone(pk)  # a passkey this IdP never registered
    stranger.client = phone.client
    unknown = stranger.passkey_sign_in(req, html)
    assert unknown.status_code == 401 and unknown.get_json()["error"] == "credential_unknown"

    tampered = phone.passkey_sign_in(req, html, tamper=True)
    assert tampered.status_code == 401 and tampered.get_json()["error"] == "bad_signature"

    options = phone.passkey_options(req, html).get_json()
    assertion = phone.authenticator.get(options)
    first = phone.post(f"/passkey/login/verify?req={req}", {"credential": assertion})
    assert first.status_code == 200
    phone.open_enroll()  # signing in renewed the browser's session and its CSRF token
    replay = phone.post(f"/passkey/login/verify?req={req}", {"credential": assertion})
    assert replay.status_code == 409 and replay.get_json()["error"] == "challenge_used"

    req, html, _ = phone.start_authorize(rp, prompt="login")
    no_uv = phone.passkey_sign_in(req, html, uv=False)
    assert no_uv.get_json()["error"] == "user_verification_required"
    other_site = phone.passkey_sign_in(req, html, origin="https://evil.example")
    assert other_site.get_json()["error"] == "wrong_origin"

    options = phone.passkey_options(req, html).get_json()
    with pk.db.session() as s:
        s.execute(update(PasskeyChallenge).values(expires_at=now_utc() - timedelta(seconds=1)))
    late = phone.post(
        f"/passkey/login/verify?req={req}", {"credential": phone.authenticator.get(options)}
    )
    assert late.status_code == 410 and late.get_json()["error"] == "challenge_expired"

    # An answer to a challenge made for another sign-in request is refused.
    other_req, other_html, _ = phone.start_authorize(rp, prompt="login")
    options = phone.passkey_options(other_req, other_html).get_json()
    crossed = phone.post(
        f"/passkey/login/verify?req={req}", {"credential": phone.authenticator.get(options)}
    )
    assert crossed.get_json()["error"] == "challenge_unknown"
    assert audit_codes(pk, "passkey_sign_in") == [
        "credential_unknown",
        "bad_signature",
        None,
        "challenge_used",
        "user_verification_required",
        "wrong_origin",
        "challenge_expired",
        "challenge_unknown",
    ]


def test_a_counter_that_goes_backwards_is_refused(pk: PasskeyIdp, enrolled: Phone) -> None:
    rp = pk.register_client()
    phone = enrolled
    req, html, _ = phone.start_authorize(rp)
    assert phone.passkey_sign_in(req, html, counter_step=5).status_code == 200
    req, html, _ = phone.start_authorize(rp, prompt="login")
    cloned = phone.passkey_sign_in(req, html, counter_step=-2)
    assert cloned.status_code == 403 and cloned.get_json()["error"] == "sign_count_regressed"
    assert "複製" in cloned.get_json()["message"]
    same = phone.passkey_sign_in(req, html, counter_step=0)
    assert same.get_json()["error"] == "sign_count_regressed"
    with pk.db.session() as s:
        stored = s.scalar(select(Passkey))
        refusals = s.scalars(
            select(PasskeyAudit).where(PasskeyAudit.code == "sign_count_regressed")
        ).all()
    assert stored is not None and stored.sign_count == 5
    assert [r.ref for r in refusals] == [str(stored.id), str(stored.id)]
    assert all(r.person_id is None for r in refusals)


def test_repeated_counter_regressions_pause_the_persons_passkey(
    pk: PasskeyIdp, enrolled: Phone
) -> None:
    """A counter that goes back needs the person's key (its signature verified first): such
    failures pause that person's passkey sign-in from every address."""
    rp = pk.register_client()
    phone = enrolled
    req, html, _ = phone.start_authorize(rp)
    assert phone.passkey_sign_in(req, html, counter_step=10).status_code == 200
    for _ in range(limits.SIGN_IN[1]):
        req, html, _ = phone.start_authorize(rp, prompt="login")
        cloned = phone.passkey_sign_in(req, html, counter_step=0)
        assert cloned.get_json()["error"] == "sign_count_regressed"
    elsewhere = Phone(pk, phone.authenticator)
    elsewhere.client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    req, html, _ = elsewhere.start_authorize(rp)
    paused = elsewhere.passkey_sign_in(req, html)  # even a good signature waits now
    assert paused.status_code == 429 and paused.get_json()["error"] == "sign_in_paused"
    assert "15分" in paused.get_json()["message"]
    assert audit_codes(pk, "passkey_sign_in")[-1] == "sign_in_paused"
    # Another person's passkey is not affected.
    pk.enroll_with_card(BOB, name="bob")
    other = Phone(pk)
    assert other.enroll(new_code_for(pk, BOB))["http"] == 200
    req, html, _ = other.start_authorize(rp)
    assert other.passkey_sign_in(req, html).status_code == 200


def test_a_credential_id_without_its_key_cannot_lock_its_holder_out(
    pk: PasskeyIdp, person: str, enrolled: Phone
) -> None:
    """Issue 14, item 6 for passkeys: a credential id is no secret once seen. Signatures that do
    not verify and user handles that do not match count against the *address* that sent them
    (views.SIGN_IN_SOURCE), never against the person: after the allowance that address is
    paused, while the person signs in as usual from anywhere else."""
    rp = pk.register_client()
    victim = enrolled
    attacker = Phone(pk)  # a key of its own, at another address
    attacker.client.environ_base["REMOTE_ADDR"] = ATTACKER
    cid = victim.authenticator.credential_id
    _, allowed, _ = views.SIGN_IN_SOURCE
    assert allowed > limits.SIGN_IN[1]  # more than the per-person allowance
    for i in range(allowed):
        req, html, _ = attacker.start_authorize(rp, prompt="login")
        options = attacker.passkey_options(req, html).get_json()
        forged = attacker.authenticator.get(options, credential_id=cid)
        if i % 2:  # a user handle that is not the person's
            forged["response"]["userHandle"] = base64.urlsafe_b64encode(bytes(32)).decode()
        resp = attacker.post(f"/passkey/login/verify?req={req}", {"credential": forged})
        expected = "credential_unknown" if i % 2 else "bad_signature"
        assert resp.status_code == 401 and resp.get_json()["error"] == expected
    # The person is not paused: their passkey works at once from their own address.
    req, html, _ = victim.start_authorize(rp, prompt="login")
    assert victim.passkey_sign_in(req, html).status_code == 200
    # The address is: even the genuine passkey answering from there waits for the window.
    there = Phone(pk, victim.authenticator)
    there.client.environ_base["REMOTE_ADDR"] = ATTACKER
    req, html, _ = there.start_authorize(rp)
    paused = there.passkey_sign_in(req, html)
    assert paused.status_code == 429 and paused.get_json()["error"] == "too_many_attempts"
    assert audit_codes(pk, "passkey_sign_in")[-1] == "too_many_attempts"
    with pk.db.session() as s:
        assert s.get(Attempt, f"sign-in:{person}") is None
        row = s.get(Attempt, f"passkey-source:{sha256_hex(ATTACKER)}")
        assert row is not None and row.failures == allowed


def test_messages_in_english(pk: PasskeyIdp, enrolled: Phone) -> None:
    rp = pk.register_client()
    req, html, _ = enrolled.start_authorize(rp, ui_locales="en")
    assert "Sign in with a passkey" in html
    resp = enrolled.passkey_sign_in(req, html, tamper=True)
    assert resp.get_json()["message"] == "The passkey's signature could not be verified. " + (
        "Please try again."
    )
    phone = Phone(pk)
    phone.open_enroll("en")
    resp = phone.client.post(
        "/passkey/enroll/options?lang=en",
        json={"code": "ABCDE-FGHJK"},
        headers={"X-CSRF-Token": phone.csrf},
    )
    assert resp.get_json()["message"].startswith("The enrollment code is not right.")


def test_every_refusal_has_its_own_message() -> None:
    ja = [f.ja for f in FAILURES.values()]
    en = [f.en for f in FAILURES.values()]
    assert len(set(ja)) == len(ja) and len(set(en)) == len(en)


# --- levels of assurance ---------------------------------------------------------------------


def test_a_client_needing_the_card_steps_a_passkey_session_up(
    pk: PasskeyIdp, person: str, enrolled: Phone
) -> None:
    phone = enrolled
    plain = pk.register_client("rp-plain")
    req, html, _ = phone.start_authorize(plain)
    phone.finish(phone.passkey_sign_in(req, html).get_json()["redirect"])

    strict = pk.register_client(
        "rp-card", phr_required_acr=ACR_CARD, redirect_uris=["https://card.example.jp/cb"]
    )
    # Signed in with a passkey, yet sent to sign in again: with the card, no passkey offered.
    req, html, verifier = phone.start_authorize(strict)
    assert "マイナンバーカードでのサインインが必要です" in html
    assert 'id="passkey-login"' not in html and 'id="card-signin"' in html
    with phone.client.session_transaction() as sess:
        phone.csrf = sess["csrf"]
    refused = phone.post(f"/passkey/login/options?req={req}", {})
    assert refused.status_code == 403 and refused.get_json()["error"] == "card_required"

    # The card reader signs the login page's card session; the flow then completes.
    with phone.client.session_transaction() as sess:
        card_session = sess["card_session"]
    with pk.db.session() as s:
        session = s.get(CardSession, card_session)
        s.expunge(session)
    signed, _ = respond(pk.app.test_client(), session, pk.cards["card"])
    assert signed.status_code == 200, signed.get_json()
    back = phone.finish(f"/login/card?req={req}")
    claims = id_token_claims(pk, strict, back["code"][0], verifier)
    assert claims["acr"] == ACR_CARD and claims["amr"] == ["sc", "pin", "hwk"]
    with pk.db.session() as s:
        latest = s.scalars(select(LoginSession).order_by(LoginSession.auth_time.desc())).first()
    assert latest is not None and latest.person_id == person and latest.acr == ACR_CARD


def test_acr_values_asking_for_the_card_also_steps_up(pk: PasskeyIdp, enrolled: Phone) -> None:
    rp = pk.register_client()
    req, html, _ = enrolled.start_authorize(rp)
    enrolled.finish(enrolled.passkey_sign_in(req, html).get_json()["redirect"])
    req, html, _ = enrolled.start_authorize(rp, acr_values=ACR_CARD)
    assert 'id="passkey-login"' not in html and "マイナンバーカード" in html


def test_discovery_lists_the_passkey_level(pk: PasskeyIdp) -> None:
    doc = pk.app.test_client().get("/.well-known/openid-configuration").get_json()
    assert ACR_PASSKEY in doc["acr_values_supported"]
    assert doc["acr_values_supported"].index(ACR_CARD) != -1


# --- an IdP reached by IP address ------------------------------------------------------------


def test_no_passkeys_on_an_ip_address_issuer(environ: dict[str, str], tmp_path) -> None:
    assert ceremonies.rp_id("http://127.0.0.1:8001") is None
    assert ceremonies.rp_id("https://id.example.jp") == "id.example.jp"
    assert ceremonies.origin("http://localhost:8001/") == "http://localhost:8001"
    pk = make_passkey_idp(environ, tmp_path, host="127.0.0.1")
    try:
        phone = Phone(pk)
        html = phone.client.get("/passkey/enroll").get_data(as_text=True)
        assert 'id="passkey-unavailable"' in html and "IPアドレス" in html
        assert 'id="passkey-enroll"' not in html
        req, login_html, _ = phone.start_authorize(pk.register_client())
        assert 'id="passkey-login"' not in login_html and 'id="card-signin"' in login_html
        with phone.client.session_transaction() as sess:
            phone.csrf = sess["csrf"]
        refused = phone.post(f"/passkey/login/options?req={req}", {})
        assert refused.status_code == 503 and refused.get_json()["error"] == "passkeys_unavailable"
    finally:
        pk.app.extensions["phr_db"].dispose()
        pk.env.server.shutdown()


def test_the_page_script_is_a_static_file_at_its_old_address(pk: PasskeyIdp) -> None:
    """idp/passkey/static/passkey.js, referenced by the enrollment page and served at
    /passkey/passkey.js as JavaScript, cacheable for an hour, byte for byte the file."""
    client = pk.app.test_client()
    page = client.get("/passkey/enroll").get_data(as_text=True)
    assert '<script src="/passkey/passkey.js" defer></script>' in page
    resp = client.get("/passkey/passkey.js")
    assert resp.status_code == 200
    assert resp.mimetype == "text/javascript"
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    shipped = (Path(ceremonies.__file__).parent / "static" / "passkey.js").read_bytes()
    assert resp.get_data() == shipped
    assert b"passkey-enroll" in shipped and b"passkey-login" in shipped
    resp.close()
