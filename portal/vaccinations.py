"""The vaccination schedule page: per child, each routine dose done / due / overdue / not yet,
computed by portal.care.schedule from the birth date and the recorded Immunizations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from portal.care import schedule as engine
from portal.federated import reader
from portal.pages import JST
from portal.plus_pages import find, page, people, signed_in_page
from portal.plus_words import NOT_COVERED_JA
from portal.session import current_subject

bp = Blueprint("portal_vaccinations", __name__, template_folder="templates")


@bp.get("/me/children/<pid>/vaccinations")
@signed_in_page
def vaccinations(pid: str) -> ResponseReturnValue:
    found = reader(current_subject() or "")
    child = find(found, people(found), pid, child=True)
    today = datetime.now(JST).date()
    # Doses given in every city count (a child that moved).
    doses = engine.doses_from([i for _, i in found.records(list(child.sources), "Immunization")])
    series: list[dict[str, Any]] = []
    if child.birth_date is not None:
        for status in engine.schedule(child.birth_date, doses, today, child.sex):
            if not series or series[-1]["key"] != status.series:
                series.append({"key": status.series, "name_ja": status.name_ja,
                               "name_en": status.name_en, "doses": []})  # fmt: skip
            series[-1]["doses"].append(status)
    return page(
        "plus/vaccinations.html",
        child=child,
        series=series,
        today=today.isoformat(),
        not_covered=list(zip(NOT_COVERED_JA, engine.NOT_COVERED, strict=True)),
    )
