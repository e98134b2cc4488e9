"""The example app's small schedule table: which dose comes next, from when, and whether the
publicly funded window has passed."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, timedelta
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "examples" / "vaccination_app" / "jp_schedule.py"
_spec = importlib.util.spec_from_file_location("vaccination_example_schedule", PATH)
assert _spec and _spec.loader
sched = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = sched  # dataclasses look their module up while defined
_spec.loader.exec_module(sched)

TODAY = date(2026, 11, 26)


def _by_name(doses: list) -> dict[str, object]:
    return {n.vaccine.name_en: n for n in doses}


def test_a_newborn_has_every_first_dose_ahead() -> None:
    birth = TODAY - timedelta(days=10)
    doses = _by_name(sched.next_doses(birth, {}, TODAY))
    assert len(doses) == len(sched.SCHEDULE)
    assert all(n.status == "upcoming" and n.done == 0 for n in doses.values())
    assert doses["Hepatitis B"].due == birth + timedelta(days=60)
    assert doses["BCG"].until == birth + timedelta(days=364)
    order = [n.due for n in doses.values()]
    assert order == sorted(order)


def test_after_the_infant_series_the_one_year_doses_are_due() -> None:
    birth = TODAY - timedelta(days=368)
    at = [birth + timedelta(days=d) for d in (61, 89, 117)]
    given = {"HepB": [*at[:2], birth + timedelta(days=215)], "Rota5": at, "DPT-IPV-Hib": at,
             "PCV20": at, "BCG": [birth + timedelta(days=160)]}  # fmt: skip
    doses = _by_name(sched.next_doses(birth, given, TODAY))
    assert set(doses) == {
        "DTaP-IPV-Hib", "Pneumococcal (PCV)", "Measles-rubella (MR)", "Varicella",
        "Japanese encephalitis", "DT",
    }  # fmt: skip
    assert doses["Measles-rubella (MR)"].status == "due"
    assert doses["Measles-rubella (MR)"].dose.label_en == "first"
    booster = doses["DTaP-IPV-Hib"]
    assert booster.done == 3 and booster.dose.label_en == "booster"
    # From the first birthday standard start, and at least 6 months after the third dose.
    assert booster.due == max(birth + timedelta(days=360), at[2] + timedelta(days=180))
    assert doses["Japanese encephalitis"].status == "upcoming"


def test_a_series_left_unfinished_past_its_window_is_flagged() -> None:
    birth = TODAY - timedelta(days=300)  # past 32 weeks: rotavirus can no longer be given
    given = {"Rota5": [birth + timedelta(days=61), birth + timedelta(days=89)]}
    rota = _by_name(sched.next_doses(birth, given, TODAY))["Rotavirus"]
    assert rota.done == 2 and rota.status == "overdue"
    assert rota.status_text() == ("公費の期間を過ぎています", "past the funded age")


def test_products_of_one_vaccine_count_together() -> None:
    birth = TODAY - timedelta(days=200)
    given = {"PCV15": [birth + timedelta(days=61)], "PCV20": [birth + timedelta(days=89)]}
    pcv = _by_name(sched.next_doses(birth, given, TODAY))["Pneumococcal (PCV)"]
    assert pcv.done == 2 and pcv.dose.label_en == "primary 3"
    assert pcv.due == birth + timedelta(days=120)  # standard start; 27 days after #2 is earlier
