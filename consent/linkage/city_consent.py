"""A person's consent to a city ("city X may provide my data"), which asks the city to find
them unless they are linked there already; its withdrawal; and a person leaving altogether."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import records
from consent.linkage.attributes import AttributeBox, check_attributes
from consent.linkage.guardianship import guardianships
from consent.linkage.link_requests import close, pending
from consent.linkage.provider_consents import child_consent, self_consent
from consent.models import LinkRequest, Municipality, PatientLink
from consent.records import ACTIVE, PROVIDER, ConsentError, ConsentView, patients_key

PROVIDER_PURPOSE = (
    "本人（または子）の健康記録を本人が閲覧・利用するため、自治体から PHR 基盤へ提供する"
    " / the city provides the records to the PHR platform for the person's own use"
)


def _municipality(s: Session, code: str) -> Municipality:
    city = s.get(Municipality, code)
    if city is None:
        raise ConsentError(f"municipality {code} does not participate")
    return city


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
        checked = check_attributes(attributes)
        for old in pending(s, subject=subject, municipality=municipality):
            close(old, "withdrawn")
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
        for g in guardianships(s, subject, municipality):
            child_consent(s, view, g.child_code, recorded_by)
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
    for request in pending(s, subject=subject, municipality=municipality):
        close(request, "withdrawn")
    return withdrawn


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
    for row in [*links, *guardianships(s, subject)]:
        s.delete(row)
    for request in s.scalars(select(LinkRequest).where(LinkRequest.subject == subject)):
        if request.status == "pending":
            close(request, "withdrawn")
    s.flush()
    records.touch(s, [patients_key(subject)])
    return {"withdrawn": [v.id for v in withdrawn], "unlinked": unlinked}
