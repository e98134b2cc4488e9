"""A card reader's response to a card session, verified as a pipeline of named steps, each
raising one precise CardError (idp.card.errors):

    claim_challenge       exactly one response is ever verified against a challenge
    check_source_limit    a source address with too many failed signatures is refused first
    verify_signatures     the authentication signature, and the signature certificate's, paired
    find_presenting_person  whose card it is, if enrolled (for the attempt limits only)
    check_person_limit    that person is not paused
    record_verified       map to a person (or enroll) and mark the session verified

A failure is recorded on the session and audited (record_failure); the attempt limits count
it as COUNTED_FAILURES and PERSON_FAILURES say."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from idp import limits
from idp.card.errors import CardError
from idp.card.mapping import binding, map_to_person
from idp.card.models import CardSession
from idp.card.profile import AUTH, SIGN, signed_data, spki_sha256
from idp.card.services import CardServices
from idp.card.sessions import _audit
from idp.card.verify import VerifiedCertificate
from idp.orm import rowcount
from idp.tokens import aware, now_utc
from phr_core.db import Database

MAX_CERT_BYTES = 8192
MAX_SIG_BYTES = 1024


@dataclass(frozen=True)
class CardResponse:
    certificate: bytes
    signature: bytes
    signature_certificate: bytes | None = None
    signature_signature: bytes | None = None

    @classmethod
    def from_json(cls, doc: object) -> CardResponse:
        """Parse the POSTed JSON; CardError('malformed_request') for anything else."""
        if not isinstance(doc, dict):
            raise CardError("malformed_request")

        def field_(name: str, limit: int, required: bool) -> bytes | None:
            raw = doc.get(name)
            if raw is None and not required:
                return None
            if not isinstance(raw, str) or not raw or len(raw) > limit * 2:
                raise CardError("malformed_request")
            try:
                value = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                try:
                    value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
                except (binascii.Error, ValueError):
                    raise CardError("malformed_request") from None
            if not value or len(value) > limit:
                raise CardError("malformed_request")
            return value

        cert = field_("certificate", MAX_CERT_BYTES, True)
        sig = field_("signature", MAX_SIG_BYTES, True)
        scert = field_("signature_certificate", MAX_CERT_BYTES, False)
        ssig = field_("signature_signature", MAX_SIG_BYTES, False)
        if (scert is None) != (ssig is None):
            raise CardError("malformed_request")
        assert cert is not None and sig is not None  # noqa: S101 - narrowing: required fields raise
        return cls(cert, sig, scert, ssig)


@dataclass
class CardAttempt:
    """One response on its way through the steps: what each step found, for the next."""

    db: Database
    services: CardServices
    session_id: str
    response: CardResponse
    source: str
    event: str  # "enrollment" or "sign_in" (as mapped, once mapped)
    data: bytes = b""  # the signed bytes of the claimed challenge
    auth: VerifiedCertificate | None = None
    sign: VerifiedCertificate | None = None
    person: str | None = None


def handle_response(
    db: Database,
    services: CardServices,
    session_id: str,
    response: CardResponse,
    source: str = "unknown",
) -> CardSession:
    """Verify a card reader's response to a session and record the outcome. Returns the
    verified session; raises CardError with the reason otherwise (already audited).

    Attempt limits (idp.limits): a response from a `source` address with too many failed
    signatures is refused before any work; a person is paused only after their card's key
    proved possession (their authentication signature verified) and something else failed.
    A certificate alone, being public, never pauses anyone."""
    event = "enrollment" if response.signature_certificate else "sign_in"
    attempt = CardAttempt(db, services, session_id, response, source, event)
    claim_challenge(attempt)
    # the rest runs outside the claim's transaction (OCSP may take a moment)
    try:
        for step in STEPS:
            step(attempt)
        return record_verified(attempt)
    except CardError as exc:
        record_failure(attempt, exc)
        raise
    except Exception:
        record_internal_error(attempt)
        raise


def claim_challenge(a: CardAttempt) -> None:
    """Claim the session's challenge (pending → processing) so that exactly one response is
    ever verified against it. The failure is audited before it is raised."""
    with a.db.session() as s:
        failure = _claim(s, a)
    if failure is not None:
        raise CardError(failure)


def _claim(s: Session, a: CardAttempt) -> str | None:
    session = s.get(CardSession, a.session_id) if len(a.session_id) <= 64 else None
    if session is None:
        _audit(s, a.event, "failure", "session_not_found", None)
        return "session_not_found"
    if session.status != "pending":
        _audit(s, a.event, "failure", "challenge_used", a.session_id)
        return "challenge_used"
    if aware(session.expires_at) <= now_utc():
        session.status, session.error = "failed", "challenge_expired"
        _audit(s, a.event, "failure", "challenge_expired", a.session_id)
        return "challenge_expired"
    claimed = s.execute(
        update(CardSession)
        .where(CardSession.id == a.session_id, CardSession.status == "pending")
        .values(status="processing")
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        _audit(s, a.event, "failure", "challenge_used", a.session_id)
        return "challenge_used"
    a.data = signed_data(a.services.settings.issuer, session.id, session.challenge)
    return None


def check_source_limit(a: CardAttempt) -> None:
    with a.db.session() as s:
        if limits.blocked_for(s, limits.CARD_SOURCE, a.source):
            raise CardError("too_many_attempts")


def verify_signatures(a: CardAttempt) -> None:
    a.auth, a.sign = _verify(a.services, a.response, a.data)


def find_presenting_person(a: CardAttempt) -> None:
    a.person = _presenting_person(a.db, a.services, a.auth)


def check_person_limit(a: CardAttempt) -> None:
    if a.person is not None:
        with a.db.session() as s:
            if limits.blocked_for(s, limits.SIGN_IN, a.person):
                raise CardError("too_many_attempts")


STEPS: tuple[Callable[[CardAttempt], None], ...] = (
    check_source_limit,
    verify_signatures,
    find_presenting_person,
    check_person_limit,
)


def record_verified(a: CardAttempt) -> CardSession:
    """Map the verified card to a person (enrolling a new one) and mark the session verified."""
    assert a.auth is not None  # noqa: S101 - narrowing: verify_signatures set it or raised
    with a.db.session() as s:
        person_id, a.event, enrolled = map_to_person(s, a.services, a.auth, a.sign)
        method = a.auth.revocation_method
        s.execute(
            update(CardSession)
            .where(CardSession.id == a.session_id)
            .values(
                status="verified",
                person_id=person_id,
                enrolled=enrolled,
                verified_at=now_utc(),
                revocation_method=method,
            )
            .execution_options(synchronize_session=False)
        )
        _audit(s, a.event, "success", None, a.session_id, person_id, method)
        verified = s.get(CardSession, a.session_id)
        assert verified is not None  # noqa: S101 - narrowing: the row just updated by its id
        s.refresh(verified)
        return verified


def record_failure(a: CardAttempt, exc: CardError) -> None:
    """Count the failure against the source (and the person, when their key signed), close
    the session (or keep it open for enrollment's second response) and audit it."""
    if exc.code in COUNTED_FAILURES:
        limits.record_failure(a.db, limits.CARD_SOURCE, a.source)
    if exc.code in PERSON_FAILURES:
        # Raised only after the authentication signature verified (the pairing and the
        # renewal link are checked after it): the key's holder failed something else.
        a.person = a.person or _presenting_person(a.db, a.services, None, a.response.certificate)
        if a.person is not None:
            limits.record_failure(a.db, limits.SIGN_IN, a.person)
    with a.db.session() as s:
        # Enrollment needs a second response to the same challenge: keep it open.
        status = "pending" if exc.code == "enrollment_required" else "failed"
        s.execute(
            update(CardSession)
            .where(CardSession.id == a.session_id)
            .values(status=status, error=exc.code)
            .execution_options(synchronize_session=False)
        )
        _audit(s, a.event, "failure", exc.code, a.session_id)


def record_internal_error(a: CardAttempt) -> None:
    with a.db.session() as s:
        s.execute(
            update(CardSession)
            .where(CardSession.id == a.session_id)
            .values(status="failed", error="internal_error")
            .execution_options(synchronize_session=False)
        )
        _audit(s, a.event, "failure", "internal_error", a.session_id)


# Failures that look like guessing or forging: they count against the source address
# (limits.CARD_SOURCE). Expired, revoked or unreachable-authority failures do not: retrying
# them is no attack.
COUNTED_FAILURES = frozenset(
    {"bad_signature", "certificates_not_paired", "renewal_person_mismatch"}
)
# Of those, the ones that can only happen after the person's authentication key signed (proof
# of possession): only these count against the person (limits.SIGN_IN). A bad signature under
# someone's certificate says nothing about them: their certificate is public.
PERSON_FAILURES = frozenset({"certificates_not_paired", "renewal_person_mismatch"})


def _presenting_person(
    db: Database,
    services: CardServices,
    auth: VerifiedCertificate | None,
    certificate: bytes = b"",
) -> str | None:
    """The enrolled person whose authentication certificate was presented, if any; used to
    pause sign-in for that person (limits.SIGN_IN), never to sign anyone in."""
    fingerprint = auth.fingerprint if auth else hashlib.sha256(certificate).hexdigest()
    key = services.binding_key(fingerprint)
    with db.session() as s:
        bound = binding(s, key)
        return bound.person_id if bound is not None else None


def _verify(
    services: CardServices, response: CardResponse, data: bytes
) -> tuple[VerifiedCertificate, VerifiedCertificate | None]:
    auth = services.verifier.verify(response.certificate, response.signature, data, AUTH)
    if response.signature_certificate is None or response.signature_signature is None:
        return auth, None
    sign = services.verifier.verify(
        response.signature_certificate, response.signature_signature, data, SIGN
    )
    binding = sign.pair_binding
    if binding is None or not hmac.compare_digest(binding, spki_sha256(auth.certificate)):
        raise CardError("certificates_not_paired")
    if sign.attributes is None:
        raise CardError("certificate_unreadable")
    return auth, sign
