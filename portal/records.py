""" "My children" and the records views: checkups and measurements (Observations),
vaccinations (Immunizations) and medical bills (ExplanationOfBenefit) of the signed-in person
and each child, read with the person's own authority from every PHR server that holds them
(a family that moved: both cities' records in one table, each row naming its city)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from consent.i18n import current_language
from portal.federated import reader
from portal.plus_pages import find, page, people, signed_in_page
from portal.plus_words import WORDS
from portal.session import current_subject

bp = Blueprint("portal_records", __name__, template_folder="templates")


@bp.get("/me/children")
@signed_in_page
def children() -> ResponseReturnValue:
    found = reader(current_subject() or "")
    everyone = people(found)
    lang = current_language()
    cities = {p.id: [found.city(s.municipality, lang) for s in p.sources] for p in everyone}
    return page("plus/children.html", people=everyone, cities=cities)


@bp.get("/me/records/<pid>")
@signed_in_page
def person_records(pid: str) -> ResponseReturnValue:
    found = reader(current_subject() or "")
    person = find(found, people(found), pid)
    lang = current_language()
    sources = list(person.sources)

    def rows(rtype: str, row: Any) -> list[dict[str, str]]:
        return [
            {**row(r), "city": found.city(src.municipality, lang)}
            for src, r in found.records(sources, rtype)
        ]

    observations = rows("Observation", _observation_row)
    immunizations = rows("Immunization", _immunization_row)
    claims = rows("ExplanationOfBenefit", _claim_row)
    for rows_ in (observations, immunizations, claims):
        rows_.sort(key=lambda r: r["date"], reverse=True)
    return page(
        "plus/records.html",
        person=person,
        observations=observations,
        immunizations=immunizations,
        claims=claims,
    )


def _day(value: Any) -> str:
    return str(value or "")[:10]


def concept(cc: dict[str, Any] | None) -> str:
    """A CodeableConcept in words: its text, else the first coding's display or code."""
    cc = cc or {}
    if cc.get("text"):
        return str(cc["text"])
    for c in cc.get("coding", []):
        if c.get("display") or c.get("code"):
            return str(c.get("display") or c.get("code"))
    return ""


def _observation_row(o: dict[str, Any]) -> dict[str, str]:
    if "valueQuantity" in o:
        q = o["valueQuantity"]
        value = f"{q.get('value', '')} {q.get('unit') or q.get('code') or ''}".strip()
    elif "valueCodeableConcept" in o:
        value = concept(o["valueCodeableConcept"])
    else:
        value = str(o.get("valueString") or o.get("valueBoolean") or o.get("valueInteger") or "")
    when = o.get("effectiveDateTime") or (o.get("effectivePeriod") or {}).get("start")
    return {"id": o.get("id", ""), "date": _day(when), "item": concept(o.get("code")),
            "value": value}  # fmt: skip


def _immunization_row(i: dict[str, Any]) -> dict[str, str]:
    doses = [p.get("doseNumberPositiveInt") for p in i.get("protocolApplied", [])]
    return {
        "id": i.get("id", ""),
        "date": _day(i.get("occurrenceDateTime")),
        "vaccine": concept(i.get("vaccineCode")),
        "dose": str(doses[0]) if doses and doses[0] else "",
        "status": str(i.get("status", "")),
    }


def _claim_row(c: dict[str, Any]) -> dict[str, str]:
    total = ""
    for t in c.get("total", []):
        amount = t.get("amount") or {}
        if "value" in amount:
            value = amount["value"]
            total = f"¥{value:,.0f}" if amount.get("currency", "JPY") == "JPY" else str(value)
            break
    provider = (c.get("provider") or {}).get("display") or ""
    return {"id": c.get("id", ""), "date": _day(c.get("created")), "provider": provider,
            "total": total}  # fmt: skip


@bp.app_context_processor
def plus_menu_words() -> dict[str, object]:
    """The "+ services" words for the links on pages outside these blueprints (the home page)."""
    return {"plus_t": WORDS[current_language()]}
