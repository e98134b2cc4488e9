"""The growth chart page: per child, weight, length/height and head circumference against the
2023 survey's percentile bands (portal.care.growth draws the SVG), each with a table."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from consent.i18n import current_language
from portal.care import growth
from portal.federated import reader
from portal.plus_pages import find, page, people, signed_in_page
from portal.session import current_subject

bp = Blueprint("portal_growth", __name__, template_folder="templates")

LOINC = "http://loinc.org"


@bp.get("/me/children/<pid>/growth")
@signed_in_page
def growth_chart(pid: str) -> ResponseReturnValue:
    found = reader(current_subject() or "")
    child = find(found, people(found), pid, child=True)
    lang = current_language()
    codes = sorted(c for spec in growth.MEASURES.values() for c in spec[0])
    # Every city's measurements on one chart (a child that moved).
    observations = [
        o
        for _, o in found.records(
            list(child.sources), "Observation", [("code", ",".join(f"{LOINC}|{c}" for c in codes))]
        )
    ]
    charts = []
    if child.birth_date is not None:
        measured = growth.measurements(observations, child.birth_date)
        sex = child.sex if child.sex in ("male", "female") else None
        for measure, (_, unit, name_ja, name_en) in growth.MEASURES.items():
            points = measured[measure]
            ref = growth.reference(measure, sex) if sex else ()
            charts.append(
                {
                    "id": measure.replace("_", "-"),
                    "name": name_ja if lang == "ja" else name_en,
                    "unit": unit,
                    "svg": Markup(growth.chart_svg(measure, sex, points, lang, f"chart-{measure}"))  # noqa: S704 (built with escaping)
                    if sex
                    else None,
                    "rows": [
                        {
                            "date": m.day.isoformat(),
                            "age": f"{m.age_m:.1f}",
                            "value": f"{m.value:g}",
                            "position": growth.band_words(growth.band(ref, m), lang) if ref else "",
                        }
                        for m in points
                    ],
                }
            )
    return page("plus/growth.html", child=child, charts=charts)
