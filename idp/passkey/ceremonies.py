"""The two WebAuthn ceremonies at the IdP, on the `webauthn` package.

Relying party: rp id = the host of PHR_ISSUER, origin = its scheme, host and port. Browsers
refuse an IP address as an rp id, so an IdP reached as http://127.0.0.1 offers no passkeys
(`rp_id()` is None); use http://localhost:PORT in development (a secure context too).

Registration (after a staff-issued enrollment code): a discoverable credential with user
verification, user.id = HMAC(key from PHR_IDP_DATA_KEY, person id) so that it says nothing and
one person's passkeys on one authenticator replace each other; "none" attestation.
Authentication: no allowCredentials (no name is asked, so nothing can be probed), user
verification required. Every challenge is random (32 bytes), lives 5 minutes, is stored only
as its SHA-256 and is claimed once: a failure uses it up too. The signature counter must grow
whenever either side is non-zero; one that does not is refused and audited.

Levels: a passkey sign-in is `acr` urn:phr:acr:passkey with `amr` (RFC 8176)
["hwk", "user"] for a device-bound credential or ["swk", "user"] for a synced (backup-eligible)
one, whose private key is no longer bound to one piece of hardware."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authenticator_data,
    parse_client_data_json,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    ClientDataType,
    CollectedClientData,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp import limits
from idp.context import ACR_PASSKEY
from idp.data_keys import DataKeys
from idp.orm import rowcount
from idp.passkey import codes
from idp.passkey.errors import PasskeyError
from idp.passkey.models import EnrollmentCode, Passkey, PasskeyChallenge
from idp.tokens import aware, now_utc
from phr_core.config import Settings

CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = 180_000
RP_NAME = "PHR 認証サービス"
MAX_FIELD = 16 * 1024


def rp_id(issuer: str) -> str | None:
    """The IdP's host as WebAuthn rp id, or None when it is an IP address (browsers refuse)."""
    host = urlsplit(issuer).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host or None
    return None


def origin(issuer: str) -> str:
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}"


def _rp(settings: Settings) -> tuple[str, str]:
    found = rp_id(settings.issuer)
    if found is None:
        raise PasskeyError("passkeys_unavailable")
    return found, origin(settings.issuer)


def user_handle(settings: Settings, person_id: str) -> bytes:
    # Authenticators keep it: the same key across data-key rotations (idp.data_keys).
    keys = DataKeys(settings.secret("PHR_IDP_DATA_KEY"))
    key = keys.identifier_key("idp/passkey-user/v1")
    return hmac.new(key, person_id.encode(), hashlib.sha256).digest()


def amr_for(device_type: str) -> list[str]:
    return ["swk" if device_type == CredentialDeviceType.MULTI_DEVICE.value else "hwk", "user"]


def _new_challenge(
    s: Session, purpose: str, *, code_id: str | None = None, request_id: str | None = None
) -> bytes:
    challenge = secrets.token_bytes(32)
    now = now_utc()
    s.add(
        PasskeyChallenge(
            id=hashlib.sha256(challenge).hexdigest(),
            purpose=purpose,
            enrollment_code_id=code_id,
            auth_request_id=request_id,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    s.flush()
    return challenge


# --- parsing what the browser sent -------------------------------------------------------------


def _field(doc: dict, *path: str) -> str:
    value: object = doc
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise PasskeyError("malformed_request")
    return value


def _b64(doc: dict, *path: str) -> bytes:
    try:
        return base64url_to_bytes(_field(doc, *path))
    except ValueError:
        raise PasskeyError("malformed_request") from None


def _client_data(credential: dict) -> CollectedClientData:
    try:
        return parse_client_data_json(_b64(credential, "response", "clientDataJSON"))
    except PasskeyError:
        raise
    except Exception:
        raise PasskeyError("malformed_request") from None


def claim_challenge(
    s: Session, settings: Settings, credential: object, purpose: str
) -> tuple[PasskeyChallenge, CollectedClientData]:
    """The stored challenge the response answers, claimed (used up) now; refusals for an
    unknown, expired or already used challenge, and for a response made for another site."""
    if not isinstance(credential, dict):
        raise PasskeyError("malformed_request")
    client_data = _client_data(credential)
    row = s.get(PasskeyChallenge, hashlib.sha256(client_data.challenge).hexdigest())
    if row is None or row.purpose != purpose:
        raise PasskeyError("challenge_unknown")
    if row.used_at is not None:
        raise PasskeyError("challenge_used")
    if aware(row.expires_at) <= now_utc():
        raise PasskeyError("challenge_expired")
    claimed = s.execute(
        update(PasskeyChallenge)
        .where(PasskeyChallenge.id == row.id, PasskeyChallenge.used_at.is_(None))
        .values(used_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    if rowcount(claimed) != 1:
        raise PasskeyError("challenge_used")
    expected_type = (
        ClientDataType.WEBAUTHN_CREATE if purpose == "register" else ClientDataType.WEBAUTHN_GET
    )
    if client_data.type != expected_type:
        raise PasskeyError("malformed_request")
    if client_data.origin != origin(settings.issuer):
        raise PasskeyError("wrong_origin")
    return row, client_data


# --- registration -----------------------------------------------------------------------------


def registration_options(s: Session, settings: Settings, code: EnrollmentCode) -> str:
    """WebAuthn creation options (JSON) for the code's person."""
    rp, _ = _rp(settings)
    existing = s.scalars(select(Passkey).where(Passkey.person_id == code.person_id)).all()
    options = generate_registration_options(
        rp_id=rp,
        rp_name=RP_NAME,
        user_id=user_handle(settings, code.person_id),
        user_name="PHR",
        user_display_name=f"PHR（{now_utc():%Y-%m-%d} 登録）",
        challenge=_new_challenge(s, "register", code_id=code.id),
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in existing
        ],
    )
    return options_to_json(options)


def verify_registration(s: Session, settings: Settings, credential: object) -> Passkey:
    """Check a new credential against its challenge and enrollment code; store it and use the
    code up. PasskeyError with the reason otherwise (the challenge is used up either way)."""
    rp, expected_origin = _rp(settings)
    row, client_data = claim_challenge(s, settings, credential, "register")
    assert isinstance(credential, dict)  # noqa: S101  (claim_challenge checked)
    code = s.get(EnrollmentCode, row.enrollment_code_id or "")
    if code is None:
        raise PasskeyError("challenge_unknown")
    try:
        flags = parse_attestation_object(
            _b64(credential, "response", "attestationObject")
        ).auth_data.flags
    except PasskeyError:
        raise
    except Exception:
        raise PasskeyError("malformed_request") from None
    if not flags.uv:
        raise PasskeyError("user_verification_required")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=client_data.challenge,
            expected_rp_id=rp,
            expected_origin=expected_origin,
            require_user_verification=True,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise PasskeyError("registration_failed") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if s.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)) is not None:
        raise PasskeyError("registration_failed")  # before the code is used up
    codes.consume(s, code.id)
    transports = credential.get("response", {}).get("transports") or []
    passkey = Passkey(
        person_id=code.person_id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[t for t in transports if isinstance(t, str)][:8],
        aaguid=str(verified.aaguid)[:36],
        device_type=verified.credential_device_type.value,
        backed_up=verified.credential_backed_up,
        enrollment_code_id=code.id,
        created_at=now_utc(),
    )
    s.add(passkey)
    s.flush()
    return passkey


# --- authentication -----------------------------------------------------------------------------


def authentication_options(s: Session, settings: Settings, request_id: str) -> str:
    """WebAuthn request options (JSON) for signing in to the parked request `request_id`."""
    rp, _ = _rp(settings)
    options = generate_authentication_options(
        rp_id=rp,
        challenge=_new_challenge(s, "login", request_id=request_id),
        timeout=TIMEOUT_MS,
        allow_credentials=[],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


@dataclass(frozen=True)
class PasskeySignIn:
    person_id: str
    passkey_id: int
    acr: str
    amr: list[str]


def verify_authentication(
    s: Session, settings: Settings, credential: object, request_id: str
) -> PasskeySignIn:
    """Check an assertion: its challenge (for this parked request), the credential, the user
    verification flag, the signature and the counter. PasskeyError with the reason otherwise
    (a counter refusal names the passkey in `ref`, for the audit). Only a failure after the
    signature verified names the person (`person_id`, for their attempt limit): before it,
    nothing proves the sender holds their key."""
    rp, expected_origin = _rp(settings)
    row, client_data = claim_challenge(s, settings, credential, "login")
    assert isinstance(credential, dict)  # noqa: S101 - narrowing: claim_challenge refused non-dicts
    if row.auth_request_id != request_id:
        raise PasskeyError("challenge_unknown")
    raw_id = _field(credential, "rawId") if "rawId" in credential else _field(credential, "id")
    try:
        credential_id = bytes_to_base64url(base64url_to_bytes(raw_id))
    except ValueError:
        raise PasskeyError("malformed_request") from None
    passkey = s.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
    if passkey is None:
        raise PasskeyError("credential_unknown")
    person_id = passkey.person_id
    if limits.blocked_for(s, limits.SIGN_IN, person_id):
        raise PasskeyError("sign_in_paused", ref=str(passkey.id))
    sent_handle = credential.get("response", {}).get("userHandle")
    if sent_handle:
        try:
            handle = base64url_to_bytes(sent_handle) if isinstance(sent_handle, str) else b""
        except ValueError:
            handle = b""
        if not hmac.compare_digest(handle, user_handle(settings, person_id)):
            raise PasskeyError("credential_unknown")
    try:
        auth_data = parse_authenticator_data(_b64(credential, "response", "authenticatorData"))
    except PasskeyError:
        raise
    except Exception:
        raise PasskeyError("malformed_request") from None
    if auth_data.rp_id_hash != hashlib.sha256(rp.encode()).digest():
        raise PasskeyError("wrong_origin")
    if not auth_data.flags.uv:
        raise PasskeyError("user_verification_required")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=client_data.challenge,
            expected_rp_id=rp,
            expected_origin=expected_origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,  # checked below, after the signature
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        # Not the person's failure: anyone who saw a credential id can send a bad signature.
        raise PasskeyError("bad_signature", ref=str(passkey.id)) from None
    stored, new = int(passkey.sign_count or 0), int(verified.new_sign_count)
    if (stored > 0 or new > 0) and new <= stored:
        raise PasskeyError("sign_count_regressed", ref=str(passkey.id), person_id=person_id)
    passkey.sign_count = new
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = now_utc()
    return PasskeySignIn(
        person_id=passkey.person_id,
        passkey_id=passkey.id,
        acr=ACR_PASSKEY,
        amr=amr_for(verified.credential_device_type.value),
    )
