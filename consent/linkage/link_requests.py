"""Link requests: what the city's connector pulls and matches in its resident register, its
answer (the person's code and children, or no match), and the closing of requests a city
never answered. A request's attributes are deleted as soon as it closes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import records
from consent.linkage.attributes import AttributeBox
from consent.linkage.guardianship import MAX_CODE, Child, add_children
from consent.models import LinkRequest, PatientLink, utcnow
from consent.records import ConsentError, patients_key

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such request (or not this city's)."""


class Conflict(RuntimeError):
    """The request was already answered or withdrawn."""


def pending(s: Session, *, municipality: str, subject: str | None = None) -> list[LinkRequest]:
    q = select(LinkRequest).where(
        LinkRequest.municipality == municipality, LinkRequest.status == "pending"
    )
    if subject is not None:
        q = q.where(LinkRequest.subject == subject)
    return list(s.scalars(q.order_by(LinkRequest.created_at, LinkRequest.id)))


def close(request: LinkRequest, status: str) -> None:
    request.status = status
    request.attributes = None  # the card-verified attributes go as soon as they are not needed
    request.answered_at = utcnow()


def pending_requests(s: Session, box: AttributeBox, municipality: str) -> list[dict[str, object]]:
    """What the city's connector matches against its register: id, created_at,
    include_children and the attributes name, birthdate, sex, address. A request whose
    attributes cannot be decrypted (the service secret was replaced) is left out, so one bad row
    never blocks a city's whole pull; `phr consent expire-link-requests` closes it later."""
    out: list[dict[str, object]] = []
    for r in pending(s, municipality=municipality):
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
        close(request, "no_match")
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
    close(request, "matched")
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
        close(request, "expired")
    return len(stale)
