"""Municipality linkage and guardianship (DESIGN.md, "How a person is linked without being
named").

1. A person consents to "city X may provide my data"; unless already linked there, that makes a
   link request carrying the card-verified attributes (name, birth date, sex, address),
   encrypted at rest.
2. The city's connector pulls pending requests, matches them in its resident register and
   answers with the city's pseudonymous code, or with no_match. The attributes are deleted from
   the request in the same transaction; the link subject ↔ (city, code) is stored.
3. The answer may name the person's children (the maternal and child health handbook names
   mother and child): each becomes a guardianship until the child turns GUARDIANSHIP_END_AGE,
   and, when the person asked for it, a consent on the child's behalf for the same categories.
   Both parents can be guardians: each links separately and the city names the child to each.
   Children born later are added by the connector through the guardianship API.
4. The connector extracts only codes with an active consent for its city and category;
   withdrawing the city consent removes the person's code (and their children's, consented by
   them) from that list at once.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import records
from consent.models import (
    ConsentRecord,
    ConsentVersion,
    Guardianship,
    LinkRequest,
    Municipality,
    PatientLink,
    utcnow,
)
from consent.records import ACTIVE, PROVIDER, ConsentError, ConsentView, patients_key

log = logging.getLogger(__name__)

# Guardianship ends on the child's birthday at this age. A module constant because a new
# documented setting would belong in phr_core's service table.
GUARDIANSHIP_END_AGE = 18

# The card's signature-certificate attributes, named as the IdP's card profile and OpenID
# Connect name them (`birthdate` YYYY-MM-DD); `birth_date` is accepted on input too.
ATTRIBUTES = ("name", "birthdate", "sex", "address")
RELATIONSHIPS = ("mother", "father", "guardian")
PROVIDER_PURPOSE = (
    "本人（または子）の健康記録を本人が閲覧・利用するため、自治体から PHR 基盤へ提供する"
    " / the city provides the records to the PHR platform for the person's own use"
)
MAX_CODE = 128


class NotFound(LookupError):
    """No such request (or not this city's)."""


class Conflict(RuntimeError):
    """The request was already answered or withdrawn."""


class AttributeBox:
    """AES-256-GCM for the card-verified attributes of pending link requests. The key is derived
    from the service's secret for this one purpose; the request id is the associated data, so
    a ciphertext cannot be moved to another request."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, request_id: str, attributes: Mapping[str, str]) -> str:
        nonce = os.urandom(12)
        data = json.dumps(dict(attributes), ensure_ascii=False).encode("utf-8")
        sealed = self._aead.encrypt(nonce, data, request_id.encode("ascii"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, request_id: str, token: str) -> dict[str, str]:
        raw = base64.b64decode(token)
        try:
            data = self._aead.decrypt(raw[:12], raw[12:], request_id.encode("ascii"))
        except InvalidTag:
            raise ConsentError("the request's attributes cannot be decrypted") from None
        return json.loads(data)


@dataclass(frozen=True)
class Child:
    code: str
    birth_date: date
    relationship: str


def guardianship_end(birth_date: date) -> date:
    """The child's birthday at GUARDIANSHIP_END_AGE (29 February → 1 March)."""
    year = birth_date.year + GUARDIANSHIP_END_AGE
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def _check_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    attributes = _birthdate_alias(attributes)
    missing = [a for a in ATTRIBUTES if not isinstance(attributes.get(a), str) or not attributes[a]]
    if missing:
        raise ConsentError(f"card-verified attributes missing: {', '.join(missing)}")
    try:
        date.fromisoformat(str(attributes["birthdate"]))
    except ValueError:
        raise ConsentError("birthdate must be YYYY-MM-DD") from None
    return {a: str(attributes[a]) for a in ATTRIBUTES}


def _birthdate_alias(item: Mapping[str, object]) -> Mapping[str, object]:
    if "birthdate" not in item and "birth_date" in item:
        return {**item, "birthdate": item["birth_date"]}
    return item


def _municipality(s: Session, code: str) -> Municipality:
    city = s.get(Municipality, code)
    if city is None:
        raise ConsentError(f"municipality {code} does not participate")
    return city


def self_consent(s: Session, subject: str, municipality: str) -> ConsentView | None:
    """The subject's active consent that `municipality` provides their own data."""
    for view in records.current(
        s, kind=PROVIDER, subject=subject, actor=municipality, status=ACTIVE
    ):
        if view.record.patient_code is None:
            return view
    return None


def consent_to_municipality(
    s: Session,
    box: AttributeBox,
    *,
    subject: str,
    municipality: str,
    categories: Sequence[str],
    attributes: Mapping[str, object] | None,
    recorded_by: str,
    include_children: bool = True,
    language: str = "ja",
    collection_method: str = "web-form",
) -> tuple[ConsentView, LinkRequest | None]:
    """Record (or change) "city X may provide my data of these categories", and ask the city to
    find the person unless they are already linked there. Returns the consent and the new link
    request (None when none was needed)."""
    city = _municipality(s, municipality)
    view = self_consent(s, subject, municipality)
    if view is None:
        view = records.create(
            s,
            kind=PROVIDER,
            subject=subject,
            actor=municipality,
            actor_name=city.name_ja,
            categories=categories,
            purpose=PROVIDER_PURPOSE,
            recorded_by=recorded_by,
            collection_method=collection_method,
            language=language,
        )
    elif sorted(set(categories)) != list(view.version.categories):
        view = records.new_version(
            s, view, event=records.UPDATED, recorded_by=recorded_by, categories=categories
        )
    link = s.scalar(
        select(PatientLink).where(
            PatientLink.subject == subject, PatientLink.municipality == municipality
        )
    )
    request = None
    if link is None:
        if attributes is None:
            raise ConsentError("card-verified attributes are needed to link this city")
        checked = _check_attributes(attributes)
        for old in _pending(s, subject=subject, municipality=municipality):
            _close(old, "withdrawn")
        request = LinkRequest(
            id=str(uuid.uuid4()),
            municipality=municipality,
            subject=subject,
            consent_id=view.id,
            include_children=include_children,
            status="pending",
        )
        request.attributes = box.seal(request.id, checked)
        s.add(request)
    elif include_children:
        for g in _guardianships(s, subject, municipality):
            _child_consent(s, view, g.child_code, recorded_by)
    s.flush()
    records.touch(s, [patients_key(subject)])
    return view, request


def withdraw_municipality(
    s: Session, *, subject: str, municipality: str, recorded_by: str, reason: str | None = None
) -> list[ConsentView]:
    """Withdraw the subject's consents for this city (their own and those they gave for their
    children) and any pending link request. The link itself stays, so the person keeps reaching
    what was already loaded unless they also ask for its deletion."""
    withdrawn = [
        records.withdraw(s, view, recorded_by=recorded_by, reason=reason)
        for view in records.current(
            s, kind=PROVIDER, subject=subject, actor=municipality, status=ACTIVE
        )
    ]
    for request in _pending(s, subject=subject, municipality=municipality):
        _close(request, "withdrawn")
    return withdrawn


def _pending(s: Session, *, municipality: str, subject: str | None = None) -> list[LinkRequest]:
    q = select(LinkRequest).where(
        LinkRequest.municipality == municipality, LinkRequest.status == "pending"
    )
    if subject is not None:
        q = q.where(LinkRequest.subject == subject)
    return list(s.scalars(q.order_by(LinkRequest.created_at, LinkRequest.id)))


def _close(request: LinkRequest, status: str) -> None:
    request.status = status
    request.attributes = None  # the card-verified attributes go as soon as they are not needed
    request.answered_at = utcnow()


def pending_requests(s: Session, box: AttributeBox, municipality: str) -> list[dict[str, object]]:
    """What the city's connector matches against its register: id, created_at,
    include_children and the attributes name, birthdate, sex, address. A request whose
    attributes cannot be decrypted (the service secret was replaced) is left out, so one bad row
    never blocks a city's whole pull; `phr consent expire-link-requests` closes it later."""
    out: list[dict[str, object]] = []
    for r in _pending(s, municipality=municipality):
        try:
            attributes = box.open(r.id, r.attributes) if r.attributes else {}
        except ConsentError:
            log.warning("link request %s cannot be decrypted; left out", r.id)
            continue
        out.append(
            {
                "id": r.id,
                "created_at": records.iso(records.as_utc(r.created_at)),
                "include_children": r.include_children,
                **attributes,
            }
        )
    return out


def parse_children(raw: object) -> list[Child]:
    """The `children` of a link answer or guardianship call, checked."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConsentError("children must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ConsentError("each child must be an object")
        code = item.get("code")
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE:
            raise ConsentError("each child needs a code")
        try:
            born = date.fromisoformat(str(_birthdate_alias(item).get("birthdate")))
        except ValueError:
            raise ConsentError("each child needs birthdate as YYYY-MM-DD") from None
        relationship = item.get("relationship", "guardian")
        if relationship not in RELATIONSHIPS:
            raise ConsentError("relationship must be mother, father or guardian")
        out.append(Child(code, born, relationship))
    return out


def answer(
    s: Session,
    *,
    municipality: str,
    request_id: str,
    code: str | None,
    children: Sequence[Child] = (),
    no_match: bool = False,
    recorded_by: str,
    today: date | None = None,
) -> LinkRequest:
    """The city's answer to a link request: the person's code (and children), or no match."""
    request = s.get(LinkRequest, request_id)
    if request is None or request.municipality != municipality:
        raise NotFound(request_id)
    if request.status != "pending":
        raise Conflict(f"the request is already {request.status}")
    if no_match:
        _close(request, "no_match")
        return request
    if not code or len(code) > MAX_CODE:
        raise ConsentError("code is required (or status no_match)")
    link = s.scalar(
        select(PatientLink).where(
            PatientLink.subject == request.subject, PatientLink.municipality == municipality
        )
    )
    if link is None:
        s.add(PatientLink(subject=request.subject, municipality=municipality, code=code))
    else:
        link.code = code
    _close(request, "matched")
    s.flush()
    add_children(
        s,
        guardian=request.subject,
        municipality=municipality,
        children=children,
        consent_for_children=request.include_children,
        recorded_by=recorded_by,
        today=today,
    )
    records.touch(s, [patients_key(request.subject)])
    return request


def add_children(
    s: Session,
    *,
    guardian: str,
    municipality: str,
    children: Sequence[Child],
    consent_for_children: bool,
    recorded_by: str,
    today: date | None = None,
) -> list[Guardianship]:
    """Record that `guardian` is a guardian of these children (adults are skipped) and, when
    asked and the guardian's own city consent is active, consent for each child with the same
    categories."""
    today = today or utcnow().date()
    added = []
    parent_consent = self_consent(s, guardian, municipality) if consent_for_children else None
    for child in children:
        ends = guardianship_end(child.birth_date)
        if ends <= today:
            continue
        g = s.scalar(
            select(Guardianship).where(
                Guardianship.guardian == guardian,
                Guardianship.municipality == municipality,
                Guardianship.child_code == child.code,
            )
        )
        if g is None:
            g = Guardianship(
                guardian=guardian,
                municipality=municipality,
                child_code=child.code,
                relationship=child.relationship,
                ends_on=ends,
            )
            s.add(g)
        else:
            g.relationship, g.ends_on = child.relationship, ends
        added.append(g)
        if parent_consent is not None:
            _child_consent(s, parent_consent, child.code, recorded_by)
    s.flush()
    records.touch(s, [patients_key(guardian)])
    return added


def add_children_by_code(
    s: Session,
    *,
    municipality: str,
    guardian_code: str,
    children: Sequence[Child],
    recorded_by: str,
    today: date | None = None,
) -> list[str]:
    """The connector names a linked parent by their code (e.g. a child born after the mother
    linked). Returns the guardians' subjects found (none when the code is not linked)."""
    guardians = list(
        s.scalars(
            select(PatientLink.subject).where(
                PatientLink.municipality == municipality, PatientLink.code == guardian_code
            )
        )
    )
    for guardian in guardians:
        add_children(
            s,
            guardian=guardian,
            municipality=municipality,
            children=children,
            consent_for_children=_asked_for_children(s, guardian, municipality),
            recorded_by=recorded_by,
            today=today,
        )
    return guardians


def _asked_for_children(s: Session, subject: str, municipality: str) -> bool:
    last = s.scalar(
        select(LinkRequest)
        .where(
            LinkRequest.subject == subject,
            LinkRequest.municipality == municipality,
            LinkRequest.status == "matched",
        )
        .order_by(LinkRequest.answered_at.desc())
        .limit(1)
    )
    return bool(last and last.include_children)


def _guardianships(
    s: Session, guardian: str, municipality: str | None = None
) -> list[Guardianship]:
    q = select(Guardianship).where(Guardianship.guardian == guardian)
    if municipality is not None:
        q = q.where(Guardianship.municipality == municipality)
    return list(s.scalars(q.order_by(Guardianship.municipality, Guardianship.child_code)))


def _child_consent(s: Session, parent: ConsentView, child_code: str, recorded_by: str) -> None:
    """The guardian's consent on the child's behalf, mirroring their own (if none is active)."""
    city = parent.record.actor
    for view in records.current(
        s, kind=PROVIDER, subject=parent.record.subject, actor=city, status=ACTIVE
    ):
        if view.record.patient_code == child_code:
            return
    records.create(
        s,
        kind=PROVIDER,
        subject=parent.record.subject,
        actor=city,
        actor_name=parent.version.actor_name,
        categories=parent.version.categories,
        purpose=parent.version.purpose,
        recorded_by=recorded_by,
        patient=(city, child_code),
        collection_method=parent.version.collection_method,
        language=parent.version.language,
    )


def patients(s: Session, subject: str) -> list[tuple[str, str, str, date | None]]:
    """Everyone the subject may reach: (municipality, code, relationship, guardianship end).
    The end date is filtered at read time, so a cached answer stays right as days pass."""
    out: list[tuple[str, str, str, date | None]] = [
        (link.municipality, link.code, "self", None)
        for link in s.scalars(
            select(PatientLink)
            .where(PatientLink.subject == subject)
            .order_by(PatientLink.municipality)
        )
    ]
    out.extend(
        (g.municipality, g.child_code, "child", g.ends_on) for g in _guardianships(s, subject)
    )
    return out


def consented_codes(
    s: Session, municipality: str, category: str, now: datetime | None = None
) -> list[str]:
    """Codes the city may extract for `category`: people with an active consent of their own,
    and children with an active consent from a current guardian."""
    return sorted(consented_since(s, municipality, category, now))


def consented_since(
    s: Session, municipality: str, category: str, now: datetime | None = None
) -> dict[str, datetime]:
    """`consented_codes`, each with when the newest consent that covers it was given. A
    withdrawal ends a consent for good; consenting again makes a new one, so this moves
    whenever consent was interrupted (and the records perhaps deleted in between): the
    connector then forgets what it had sent for that person and sends it all again."""
    if category not in records.CATEGORIES:
        raise ConsentError("unknown category")
    now = now or utcnow()
    today = now.date()
    # Columns only, no ORM objects: a city has tens of thousands of consenting people.
    rows = s.execute(
        select(
            ConsentRecord.subject,
            ConsentRecord.patient_code,
            ConsentVersion.categories,
            ConsentVersion.period_end,
            ConsentRecord.created_at,
        )
        .join(
            ConsentVersion,
            (ConsentVersion.consent_id == ConsentRecord.id)
            & (ConsentVersion.version == ConsentRecord.current_version),
        )
        .where(
            ConsentRecord.kind == PROVIDER,
            ConsentRecord.actor == municipality,
            ConsentRecord.status == ACTIVE,
        )
    ).all()
    own: dict[str, datetime] = {}
    for_children: dict[tuple[str, str], datetime] = {}
    for subject, patient_code, categories, end, created in rows:
        if category not in categories or (end is not None and records.as_utc(end) <= now):
            continue
        created = records.as_utc(created) or created
        if patient_code is None:
            own[subject] = max(created, own.get(subject, created))
        else:
            key = (subject, patient_code)
            for_children[key] = max(created, for_children.get(key, created))
    codes: dict[str, datetime] = {}

    def add(code: str, since: datetime) -> None:
        codes[code] = max(since, codes.get(code, since))

    if own:
        for subject, code in s.execute(
            select(PatientLink.subject, PatientLink.code).where(
                PatientLink.municipality == municipality
            )
        ):
            if subject in own:
                add(code, own[subject])
    if for_children:
        for guardian, child_code in s.execute(
            select(Guardianship.guardian, Guardianship.child_code).where(
                Guardianship.municipality == municipality, Guardianship.ends_on > today
            )
        ):
            if (guardian, child_code) in for_children:
                add(child_code, for_children[(guardian, child_code)])
    return codes


def expire_pending(s: Session, older_than: datetime) -> int:
    """Close link requests still pending since before `older_than` and delete their attributes
    (card-verified personal data must not wait forever for a city that never answers). The
    consent stays; the person can ask again."""
    stale = list(
        s.scalars(
            select(LinkRequest).where(
                LinkRequest.status == "pending", LinkRequest.created_at < older_than
            )
        )
    )
    for request in stale:
        _close(request, "expired")
    return len(stale)


def end_guardianship(
    s: Session,
    *,
    municipality: str,
    guardian_code: str,
    child_code: str,
    recorded_by: str,
    reason: str | None = None,
) -> list[str]:
    """The city says this person is no longer (or never was) a guardian of this child (custody
    changed, a record was corrected): the guardianship goes, and with it the consents the
    guardian gave for the child. Returns the guardians' subjects affected."""
    guardians = list(
        s.scalars(
            select(PatientLink.subject).where(
                PatientLink.municipality == municipality, PatientLink.code == guardian_code
            )
        )
    )
    affected = []
    for guardian in guardians:
        rows = list(
            s.scalars(
                select(Guardianship).where(
                    Guardianship.guardian == guardian,
                    Guardianship.municipality == municipality,
                    Guardianship.child_code == child_code,
                )
            )
        )
        for row in rows:
            s.delete(row)
        for view in records.current(
            s, kind=PROVIDER, subject=guardian, actor=municipality, status=ACTIVE
        ):
            if view.record.patient_code == child_code:
                records.withdraw(s, view, recorded_by=recorded_by, reason=reason)
        if rows:
            affected.append(guardian)
            records.touch(s, [patients_key(guardian)])
    s.flush()
    return affected


def forget_subject(s: Session, *, subject: str, recorded_by: str) -> dict[str, object]:
    """A person leaves (or asks for deletion): every consent they gave is withdrawn (the
    versions stay: the consent trail is kept as the law requires), and their links,
    guardianships and link requests (with any attributes) are deleted. Returns what was
    unlinked, so the caller can ask the PHR server to delete the records behind those codes."""
    withdrawn = [
        records.withdraw(s, v, recorded_by=recorded_by, reason="account deleted")
        for v in records.current(s, subject=subject, status=ACTIVE)
    ]
    links = list(s.scalars(select(PatientLink).where(PatientLink.subject == subject)))
    unlinked = [{"municipality": x.municipality, "code": x.code} for x in links]
    for row in [*links, *_guardianships(s, subject)]:
        s.delete(row)
    for request in s.scalars(select(LinkRequest).where(LinkRequest.subject == subject)):
        if request.status == "pending":
            _close(request, "withdrawn")
    s.flush()
    records.touch(s, [patients_key(subject)])
    return {"withdrawn": [v.id for v in withdrawn], "unlinked": unlinked}
