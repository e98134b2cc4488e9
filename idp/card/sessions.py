"""Card sessions at the IdP: the login page opens one, the card reader signs its challenge, the
IdP verifies the card and maps it to a person, and the login page takes the result once.

    create_card_session()  →  GET /card/sessions/<id|code>  →  POST …/response
        → handle_response(): claim (single use) → verify → map to a person → record
    take_verified()  (single use)

Signed bytes: UTF-8 of "phr-card-auth-v1\\n{origin}\\n{session_id}\\n{challenge}", origin being
the IdP's issuer, so a signature for one IdP or one session is worthless for any other.

How a certificate maps to a person: by HMAC-SHA256 (key derived from PHR_IDP_DATA_KEY) of the
certificate's SHA-256 fingerprint. The serial number is never read, stored or logged.
- Authentication certificate bound → that person.
- Not bound → the card holder must also sign with the signature certificate (enrollment): both
  signatures verified, the signature certificate's authority-signed pair binding names this
  authentication key, then
  - the authority's renewal link leads to a bound certificate → the same person, if the
    four basic attributes agree on name, birth date and sex (else refused);
  - otherwise a new Person, with the attributes stored encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp import limits
from idp.card.errors import CardError
from idp.card.lookup import index_person
from idp.card.models import CardAttributes, CardAudit, CardBinding, CardSession
from idp.card.profile import AUTH, SIGN, BasicAttributes, signed_data, spki_sha256
from idp.card.renewal import RenewalLinks
from idp.card.verifier_config import NoRenewalLinks, verifier_choice
from idp.card.verify import CardVerifier, VerifiedCertificate, ocsp_ttl_setting, verifier_for
from idp.models import Person
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.secrets import derive_key

log = logging.getLogger(__name__)

SESSION_TTL = timedelta(minutes=5)
TAKE_WITHIN = timedelta(minutes=5)  # a verified session must be taken this soon after
ACR_CARD = "urn:phr:acr:card"
AMR_CARD = ("sc", "pin", "hwk")  # RFC 8176: smart card, PIN, hardware-secured key
SHORT_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
SHORT_CODE_LENGTH = 8
MAX_CERT_BYTES = 8192
MAX_SIG_BYTES = 1024


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(dt: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they are UTC.
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CardSignIn:
    """What a verified card session yields to the login page (once)."""

    person_id: str
    session_id: str
    auth_time: datetime
    enrolled: bool  # this sign-in created the person
    revocation_method: str | None = None  # "ocsp" or "crl": how the revocation was checked
    acr: str = ACR_CARD
    amr: list[str] = field(default_factory=lambda: list(AMR_CARD))


# --- opening and finding sessions -------------------------------------------------------------


def create_card_session(db_session: Session, purpose: str = "login") -> CardSession:
    """A new pending card session (random challenge, 5 minutes, single use) for the login page
    to show as a QR code (`session_qr_svg`) and a short code. The caller commits, and keeps the
    session id in the browser's own session so that only that browser can `take_verified` it."""
    now = _now()
    session = CardSession(
        id=secrets.token_urlsafe(32),
        short_code="".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(SHORT_CODE_LENGTH)),
        purpose=purpose[:32],
        challenge=secrets.token_urlsafe(32),
        status="pending",
        enrolled=False,
        created_at=now,
        expires_at=now + SESSION_TTL,
    )
    db_session.add(session)
    db_session.flush()
    return session


def normalize_short_code(text: str) -> str | None:
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) == SHORT_CODE_LENGTH and all(c in SHORT_CODE_ALPHABET for c in code):
        return code
    return None


def find_session(db_session: Session, ref: str) -> CardSession | None:
    """A session by its id or its short code (as typed: any case, with or without a dash)."""
    code = normalize_short_code(ref)
    if code is not None:
        found = db_session.scalar(select(CardSession).where(CardSession.short_code == code))
        if found is not None:
            return found
    if len(ref) > 64:
        return None
    return db_session.get(CardSession, ref)


def display_code(session: CardSession) -> str:
    """The short code as shown to people: ABCD-EFGH."""
    return f"{session.short_code[:4]}-{session.short_code[4:]}"


def session_url(issuer: str, session: CardSession) -> str:
    """What the QR code holds: the session's public URL at this IdP."""
    return f"{issuer.rstrip('/')}/card/sessions/{session.id}"


def session_qr_svg(issuer: str, session: CardSession) -> str:
    """The session URL as an inline SVG QR code (no external requests from the login page)."""
    return qr_svg(session_url(issuer, session))


def qr_svg(text: str) -> str:
    """`text` as an SVG QR code (also the counter's enrollment-code link, idp/passkey)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, title="QR"
    )
    return out.getvalue().decode("utf-8")


def take_verified(db_session: Session, session_id: str) -> CardSignIn | None:
    """The verified result of a card session, once: a second call, a failed, pending or stale
    session gives None. The caller commits."""
    now = _now()
    result = db_session.execute(
        update(CardSession)
        .where(
            CardSession.id == session_id,
            CardSession.status == "verified",
            CardSession.verified_at >= now - TAKE_WITHIN,
        )
        .values(status="consumed", consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session = db_session.get(CardSession, session_id)
    if session is None or session.person_id is None:
        return None
    db_session.refresh(session)
    return CardSignIn(
        person_id=session.person_id,
        session_id=session.id,
        auth_time=_aware(session.verified_at or now),
        enrolled=session.enrolled,
        revocation_method=session.revocation_method,
    )


# --- the response from the card reader ----------------------------------------------------------


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
class CardServices:
    """What handling a response needs besides the database; one per app (caches inside)."""

    settings: Settings
    verifier: CardVerifier
    links: RenewalLinks

    @classmethod
    def from_settings(cls, settings: Settings) -> CardServices:
        """In development, with the default trust root, the stand-in authority is created on
        first use (so the IdP works before `phr card init`); in production the configured
        PHR_CARD_TRUST_ROOT must exist."""
        choice = verifier_choice(settings)  # PHR_CARD_VERIFIER; refuses stand-ins in production
        trust_root = str(choice.trust_root)
        if (
            choice.kind == "virtual"
            and not settings.environ.get("PHR_CARD_TRUST_ROOT")
            and not Path(trust_root).exists()
        ):
            from idp.authority_sim.ca import init_authority

            init_authority(settings)
        authority_url = choice.authority_url
        ocsp_ttl = ocsp_ttl_setting(settings.option("PHR_CARD_OCSP_CACHE_SECONDS"))
        verifier = verifier_for(trust_root, authority_url, ocsp_ttl, choice.ocsp_url)
        links = (
            RenewalLinks(authority_url, verifier.trust)
            if authority_url
            else NoRenewalLinks(verifier.trust)
        )
        return cls(settings, verifier, links)

    def binding_key(self, fingerprint: str) -> str:
        key = derive_key(self.settings.secret("PHR_IDP_DATA_KEY"), "idp/card-binding/v1")
        return hmac.new(key, bytes.fromhex(fingerprint), hashlib.sha256).hexdigest()

    def _attr_key(self) -> bytes:
        return derive_key(self.settings.secret("PHR_IDP_DATA_KEY"), "idp/card-attributes/v1")

    def seal_attributes(self, person_id: str, attrs: BasicAttributes) -> bytes:
        import json

        nonce = secrets.token_bytes(12)
        plain = json.dumps(attrs.as_dict(), ensure_ascii=False).encode()
        return b"\x01" + nonce + AESGCM(self._attr_key()).encrypt(nonce, plain, person_id.encode())

    def open_attributes(self, person_id: str, sealed: bytes) -> BasicAttributes:
        import json

        if sealed[:1] != b"\x01":
            raise ValueError("unknown attribute sealing version")
        plain = AESGCM(self._attr_key()).decrypt(sealed[1:13], sealed[13:], person_id.encode())
        return BasicAttributes(**json.loads(plain))


def read_attributes(
    db_session: Session, services: CardServices, person_id: str
) -> BasicAttributes | None:
    """The card-verified name, birth date, sex and address of a person (for the municipality
    linkage), decrypted; None when the person never enrolled with a card."""
    row = db_session.get(CardAttributes, person_id)
    return None if row is None else services.open_attributes(person_id, row.sealed)


def _audit(
    db_session: Session,
    event: str,
    outcome: str,
    code: str | None,
    session_id: str | None,
    person_id: str | None = None,
    revocation_method: str | None = None,
) -> None:
    db_session.add(
        CardAudit(
            at=_now(),
            event=event,
            outcome=outcome,
            code=code,
            session_id=session_id,
            person_id=person_id if outcome == "success" else None,
            revocation_method=revocation_method,
        )
    )
    log.info("card %s %s%s", event, outcome, f" ({code})" if code else "")


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
    # 1. claim the challenge: exactly one response is ever verified against it
    with db.session() as s:
        session = s.get(CardSession, session_id) if len(session_id) <= 64 else None
        if session is None:
            _audit(s, event, "failure", "session_not_found", None)
            raise_after = CardError("session_not_found")
        elif session.status != "pending":
            _audit(s, event, "failure", "challenge_used", session_id)
            raise_after = CardError("challenge_used")
        elif _aware(session.expires_at) <= _now():
            session.status, session.error = "failed", "challenge_expired"
            _audit(s, event, "failure", "challenge_expired", session_id)
            raise_after = CardError("challenge_expired")
        else:
            claimed = s.execute(
                update(CardSession)
                .where(CardSession.id == session_id, CardSession.status == "pending")
                .values(status="processing")
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                _audit(s, event, "failure", "challenge_used", session_id)
                raise_after = CardError("challenge_used")
            else:
                raise_after = None
                data = signed_data(services.settings.issuer, session.id, session.challenge)
    if raise_after is not None:
        raise raise_after

    # 2. verify and map, outside the claim's transaction (OCSP may take a moment)
    person: str | None = None
    try:
        with db.session() as s:
            if limits.blocked_for(s, limits.CARD_SOURCE, source):
                raise CardError("too_many_attempts")
        auth, sign = _verify(services, response, data)
        person = _presenting_person(db, services, auth)
        if person is not None:
            with db.session() as s:
                if limits.blocked_for(s, limits.SIGN_IN, person):
                    raise CardError("too_many_attempts")
        with db.session() as s:
            person_id, event, enrolled = _map_to_person(s, services, auth, sign)
            method = auth.revocation_method
            s.execute(
                update(CardSession)
                .where(CardSession.id == session_id)
                .values(
                    status="verified",
                    person_id=person_id,
                    enrolled=enrolled,
                    verified_at=_now(),
                    revocation_method=method,
                )
                .execution_options(synchronize_session=False)
            )
            _audit(s, event, "success", None, session_id, person_id, method)
            verified = s.get(CardSession, session_id)
            assert verified is not None  # noqa: S101 - narrowing: the row just updated by its id
            s.refresh(verified)
            return verified
    except CardError as exc:
        if exc.code in COUNTED_FAILURES:
            limits.record_failure(db, limits.CARD_SOURCE, source)
        if exc.code in PERSON_FAILURES:
            # Raised only after the authentication signature verified (the pairing and the
            # renewal link are checked after it): the key's holder failed something else.
            person = person or _presenting_person(db, services, None, response.certificate)
            if person is not None:
                limits.record_failure(db, limits.SIGN_IN, person)
        with db.session() as s:
            # Enrollment needs a second response to the same challenge: keep it open.
            status = "pending" if exc.code == "enrollment_required" else "failed"
            s.execute(
                update(CardSession)
                .where(CardSession.id == session_id)
                .values(status=status, error=exc.code)
                .execution_options(synchronize_session=False)
            )
            _audit(s, event, "failure", exc.code, session_id)
        raise
    except Exception:
        with db.session() as s:
            s.execute(
                update(CardSession)
                .where(CardSession.id == session_id)
                .values(status="failed", error="internal_error")
                .execution_options(synchronize_session=False)
            )
            _audit(s, event, "failure", "internal_error", session_id)
        raise


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
        bound = _binding(s, key)
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


def _binding(s: Session, key: str) -> CardBinding | None:
    return s.scalar(select(CardBinding).where(CardBinding.cert_key == key))


def _map_to_person(
    s: Session,
    services: CardServices,
    auth: VerifiedCertificate,
    sign: VerifiedCertificate | None,
) -> tuple[str, str, bool]:
    """(person id, audit event, enrolled now)."""
    auth_key = services.binding_key(auth.fingerprint)
    bound = _binding(s, auth_key)
    if bound is not None:
        if bound.status != "active":
            # A superseded certificate is also revoked; reaching here means the authority
            # still says "good". Refuse rather than guess.
            raise CardError("certificate_superseded")
        if sign is not None:
            _bind_sign(s, services, bound.person_id, sign, "enrollment")
        return bound.person_id, "sign_in", False
    if sign is None:
        raise CardError("enrollment_required")
    attrs = sign.attributes
    assert attrs is not None  # noqa: S101  (checked in _verify)
    sign_bound = _binding(s, services.binding_key(sign.fingerprint))

    # Renewal: the authority's signed link leads from this certificate to an older one.
    previous: CardBinding | None = None
    for old_fp in services.links.old_fingerprints(auth.fingerprint):
        previous = _binding(s, services.binding_key(old_fp))
        if previous is not None:
            break
    if previous is not None:
        person_id = previous.person_id
        stored = read_attributes(s, services, person_id)
        if stored is None or not stored.same_person_as(attrs):
            raise CardError("renewal_person_mismatch")
        if sign_bound is not None and sign_bound.person_id != person_id:
            raise CardError("renewal_person_mismatch")
        # Both old certificates of that person are superseded by this card's pair.
        for old in s.scalars(
            select(CardBinding).where(
                CardBinding.person_id == person_id, CardBinding.status == "active"
            )
        ):
            old.status = "superseded"
        s.flush()
        _add_binding(s, person_id, AUTH, auth_key, auth, "renewal_link")
        _bind_sign(s, services, person_id, sign, "renewal_link")
        return person_id, "renewal", False

    if sign_bound is not None:
        # The signature certificate is already this person's; the pair binding proves the
        # authentication certificate is on the same card.
        _add_binding(s, sign_bound.person_id, AUTH, auth_key, auth, "enrollment")
        _store_attributes(s, services, sign_bound.person_id, attrs)
        return sign_bound.person_id, "enrollment", False

    person = Person()
    s.add(person)
    s.flush()
    _add_binding(s, person.id, AUTH, auth_key, auth, "enrollment")
    _bind_sign(s, services, person.id, sign, "enrollment")
    return person.id, "enrollment", True


def _add_binding(
    s: Session, person_id: str, kind: str, key: str, cert: VerifiedCertificate, method: str
) -> None:
    s.add(
        CardBinding(
            person_id=person_id,
            cert_type=kind,
            cert_key=key,
            not_after=cert.not_after,
            status="active",
            binding_method=method,
            bound_at=_now(),
        )
    )
    s.flush()


def _bind_sign(
    s: Session, services: CardServices, person_id: str, sign: VerifiedCertificate, method: str
) -> None:
    key = services.binding_key(sign.fingerprint)
    existing = _binding(s, key)
    if existing is None:
        # A new signature certificate (renewal, or a move that reissued it) replaces the old.
        for old in s.scalars(
            select(CardBinding).where(
                CardBinding.person_id == person_id,
                CardBinding.cert_type == SIGN,
                CardBinding.status == "active",
            )
        ):
            old.status = "superseded"
        _add_binding(s, person_id, SIGN, key, sign, method)
    elif existing.person_id != person_id:
        raise CardError("renewal_person_mismatch")
    attrs = sign.attributes
    if attrs is not None:
        _store_attributes(s, services, person_id, attrs)


def _store_attributes(
    s: Session, services: CardServices, person_id: str, attrs: BasicAttributes
) -> None:
    row = s.get(CardAttributes, person_id)
    sealed = services.seal_attributes(person_id, attrs)
    if row is None:
        s.add(CardAttributes(person_id=person_id, sealed=sealed, updated_at=_now()))
    else:
        row.sealed, row.updated_at = sealed, _now()
    # Counter staff find enrolled people by name and birth date (idp/card/lookup.py).
    index_person(s, services.settings.secret("PHR_IDP_DATA_KEY"), person_id, attrs)
