"""A subject's patients (`/subjects/<subject>/patients`): whom a person reaches at which city,
answered from the cache for the PHR server and the IdP's SMART patient picker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent import linkage
from consent.api.base import PATIENTS_READ, cache, json_response
from consent.auth import require
from consent.models import Municipality, utcnow
from consent.records import patients_key
from phr_core.webapp import database

bp = Blueprint("patients", __name__)


def _load_patients(subject: str) -> list[tuple[str, str, str, Any]]:
    with database().session() as s:
        return linkage.patients(s, subject)


def _load_city_names() -> dict[str, tuple[str, str]]:
    with database().session() as s:
        return {m.code: (m.name_ja, m.name_en) for m in s.scalars(select(Municipality))}


def patient_list(subject: str, now: datetime | None = None) -> list[dict[str, str]]:
    """Self links and children under current guardianship, from the cache. Each names its city
    and, for a child, the birth month, so that a chooser (the IdP's SMART patient picker) can
    label them without knowing anyone's name."""
    today = (now or utcnow()).date()
    rows = cache().get(patients_key(subject), lambda: _load_patients(subject))
    names = cache().get("municipality-names", _load_city_names)
    out: list[dict[str, str]] = []
    for city, code, rel, ends in rows:
        if ends is not None and ends <= today:
            continue
        ja, en = names.get(city, (city, city))
        item = {
            "municipality": city,
            "code": code,
            "relationship": rel,
            "municipality_name": ja,
            "municipality_name_en": en,
        }
        if ends is not None:  # the guardianship ends on the child's birthday
            item["birth_month"] = f"{ends.year - linkage.GUARDIANSHIP_END_AGE:04d}-{ends.month:02d}"
        out.append(item)
    return out


@bp.get("/subjects/<path:subject>/patients")
@require(PATIENTS_READ, federated=True)
def get_patients(subject: str) -> ResponseReturnValue:
    return json_response({"subject": subject, "patients": patient_list(subject)})
