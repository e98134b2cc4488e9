"""Which person a verified card is. A certificate is known by HMAC-SHA256 (key derived from
PHR_IDP_DATA_KEY) of its SHA-256 fingerprint, never by its serial number:
- authentication certificate bound → that person;
- not bound → enrollment (both certificates signed, paired by the authority): the renewal link
  leads to a bound certificate → the same person if name, birth date and sex agree; a bound
  signature certificate → its person; otherwise a new Person.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.card.errors import CardError
from idp.card.models import CardBinding
from idp.card.profile import AUTH, SIGN
from idp.card.services import CardServices, read_attributes, store_attributes
from idp.card.verify import VerifiedCertificate
from idp.models import Person


def binding(s: Session, key: str) -> CardBinding | None:
    return s.scalar(select(CardBinding).where(CardBinding.cert_key == key))


def map_to_person(
    s: Session,
    services: CardServices,
    auth: VerifiedCertificate,
    sign: VerifiedCertificate | None,
) -> tuple[str, str, bool]:
    """(person id, audit event, enrolled now)."""
    auth_key = services.binding_key(auth.fingerprint)
    bound = binding(s, auth_key)
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
    sign_bound = binding(s, services.binding_key(sign.fingerprint))

    # Renewal: the authority's signed link leads from this certificate to an older one.
    previous: CardBinding | None = None
    for old_fp in services.links.old_fingerprints(auth.fingerprint):
        previous = binding(s, services.binding_key(old_fp))
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
        add_binding(s, person_id, AUTH, auth_key, auth.not_after, "renewal_link")
        _bind_sign(s, services, person_id, sign, "renewal_link")
        return person_id, "renewal", False

    if sign_bound is not None:
        # The signature certificate is already this person's; the pair binding proves the
        # authentication certificate is on the same card.
        add_binding(s, sign_bound.person_id, AUTH, auth_key, auth.not_after, "enrollment")
        store_attributes(s, services, sign_bound.person_id, attrs)
        return sign_bound.person_id, "enrollment", False

    person = Person()
    s.add(person)
    s.flush()
    add_binding(s, person.id, AUTH, auth_key, auth.not_after, "enrollment")
    _bind_sign(s, services, person.id, sign, "enrollment")
    return person.id, "enrollment", True


def add_binding(
    s: Session, person_id: str, kind: str, key: str, not_after: datetime, method: str
) -> None:
    """Bind a certificate (by its keyed fingerprint `key`) to a person: card sign-in, and the
    development sandbox's pre-enrolled demo parent (launcher/sandbox.py)."""
    s.add(
        CardBinding(
            person_id=person_id,
            cert_type=kind,
            cert_key=key,
            not_after=not_after,
            status="active",
            binding_method=method,
            bound_at=datetime.now(UTC),
        )
    )
    s.flush()


def _bind_sign(
    s: Session, services: CardServices, person_id: str, sign: VerifiedCertificate, method: str
) -> None:
    key = services.binding_key(sign.fingerprint)
    existing = binding(s, key)
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
        add_binding(s, person_id, SIGN, key, sign.not_after, method)
    elif existing.person_id != person_id:
        raise CardError("renewal_person_mismatch")
    attrs = sign.attributes
    if attrs is not None:
        store_attributes(s, services, person_id, attrs)
