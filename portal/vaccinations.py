"""The vaccination schedule page: per child, each routine dose done / due / overdue / not yet,
computed by portal.care.schedule from the birth date and the recorded Immunizations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from portal import home
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
    statuses = []
    if child.birth_date is not None:
        statuses = engine.schedule(child.birth_date, doses, today, child.sex)
    # What to do next first, then what is late, what is coming, and (collapsed) what is done.
    groups = {
        "overdue": _by_series(s for s in statuses if s.status == engine.OVERDUE),
        "upcoming": _by_series(s for s in statuses if s.status in (engine.DUE, engine.NOT_YET)),
        "finished": _by_series(s for s in statuses if s.status in (engine.DONE, engine.CLOSED)),
    }
    return page(
        "plus/vaccinations.html",
        child=child,
        next_doses=home.next_doses(statuses),
        groups=groups,
        today=today.isoformat(),
        not_covered=list(zip(NOT_COVERED_JA, engine.NOT_COVERED, strict=True)),
    )


def _by_series(statuses: Iterable[engine.DoseStatus]) -> list[dict[str, Any]]:
    """Doses grouped under their vaccine, in the schedule's table order."""
    series: list[dict[str, Any]] = []
    for status in statuses:
        if not series or series[-1]["key"] != status.series:
            series.append({"key": status.series, "name_ja": status.name_ja,
                           "name_en": status.name_en, "doses": []})  # fmt: skip
        series[-1]["doses"].append(status)
    return series
