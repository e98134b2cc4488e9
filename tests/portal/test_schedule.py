"""The routine-immunization schedule engine (portal/care/schedule.py): pure, no database."""

from __future__ import annotations

from datetime import date, timedelta

from portal.care.ages import add_months, months_after, reach
from portal.care.schedule import (
    CLOSED,
    DONE,
    DUE,
    NOT_YET,
    OVERDUE,
    Dose,
    DoseStatus,
    doses_from,
    due_soon,
    schedule,
)

BIRTH = date(2025, 6, 10)


def by_key(statuses: list[DoseStatus]) -> dict[tuple[str, int], DoseStatus]:
    return {(s.series, s.number): s for s in statuses}


def test_month_arithmetic_clamps_to_the_month_end() -> None:
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2025, 11, 15), 2) == date(2026, 1, 15)
    assert months_after(date(2025, 1, 31), 1) == date(2025, 3, 1)  # no February 31
    assert months_after(date(2025, 4, 12), 6) == date(2025, 10, 12)


def test_ages_follow_the_age_counting_law() -> None:
    """An age is reached at the end of the day before the corresponding day (the month's last
    day when there is none); 'until' includes that day, 'from' starts on it."""
    assert reach(date(2020, 4, 1), 12) == date(2021, 3, 31)
    assert reach(date(2025, 4, 1), 2) == date(2025, 5, 31)
    assert reach(date(2025, 3, 31), 1) == date(2025, 4, 30)  # no April 31
    assert reach(date(2024, 12, 31), 2) == date(2025, 2, 28)
    s = by_key(schedule(date(2020, 4, 1), [], date(2021, 3, 31)))
    assert s[("BCG", 1)].legal_until == date(2021, 3, 31)  # the last day under 1 …
    assert s[("MR", 1)].earliest == date(2021, 3, 31)  # … is the first day from 1
    assert s[("BCG", 1)].status != CLOSED and s[("MR", 1)].status == DUE


def test_a_newborn_has_nothing_due_and_knows_when() -> None:
    s = by_key(schedule(BIRTH, [], BIRTH + timedelta(days=10), "male"))
    assert all(x.status == NOT_YET for x in s.values())
    assert ("HPV", 1) not in s  # routine for girls only
    hepb = s[("HepB", 1)]
    assert hepb.earliest == BIRTH and hepb.next_date == date(2025, 8, 9)  # standard: 2 months
    assert s[("Rota5", 1)].earliest == BIRTH + timedelta(days=42)  # 6 weeks
    assert s[("Rota5", 1)].legal_until == BIRTH + timedelta(days=104)  # 14 weeks 6 days
    assert s[("BCG", 1)].next_date == date(2025, 11, 9)  # standard from 5 months
    assert s[("BCG", 1)].legal_until == date(2026, 6, 9)  # until the first birthday


def test_at_two_months_the_first_doses_are_due() -> None:
    today = date(2025, 8, 10)
    s = by_key(schedule(BIRTH, [], today))
    for key in (("HepB", 1), ("Rota5", 1), ("DPT-IPV-Hib", 1), ("PCV", 1)):
        assert s[key].status == DUE, key
    assert s[("BCG", 1)].status == NOT_YET
    assert s[("HepB", 2)].status == NOT_YET  # follows dose 1


def test_intervals_between_doses_of_a_series() -> None:
    first = date(2025, 8, 12)
    s = by_key(schedule(BIRTH, [("HepB", first)], date(2025, 8, 20)))
    assert s[("HepB", 1)].status == DONE and s[("HepB", 1)].given_on == first
    # 27 whole days between: dose 2 from day 28; dose 3 139 whole days after dose 1.
    assert s[("HepB", 2)].earliest == first + timedelta(days=28)
    assert s[("HepB", 3)].earliest == first + timedelta(days=140)
    done = [("HepB", first), ("HepB", first + timedelta(days=28))]
    s = by_key(schedule(BIRTH, done, first + timedelta(days=100)))
    assert s[("HepB", 2)].status == DONE and s[("HepB", 3)].status == NOT_YET
    # The booster of the five-in-one: at least 6 months after the third primary dose.
    dpt = [("DPT-IPV-Hib", date(2025, 8, 12)), ("DPT-IPV-Hib", date(2025, 9, 12)),
           ("DPT-IPV-Hib", date(2025, 10, 12))]  # fmt: skip
    s = by_key(schedule(BIRTH, dpt, date(2026, 1, 1)))
    assert s[("DPT-IPV-Hib", 4)].earliest == date(2026, 4, 12)
    assert s[("DPT-IPV-Hib", 4)].standard_until == date(2027, 4, 11)


def test_rotavirus_must_start_by_14_weeks_6_days() -> None:
    last_day = BIRTH + timedelta(days=104)
    assert by_key(schedule(BIRTH, [], last_day))[("Rota5", 1)].status in (DUE, OVERDUE)
    late = by_key(schedule(BIRTH, [], last_day + timedelta(days=1)))
    assert [late[("Rota5", n)].status for n in (1, 2, 3)] == [CLOSED, CLOSED, CLOSED]
    # "Until 32 weeks 0 days" includes that day (the day of birth is 0 weeks 0 days).
    assert late[("Rota5", 3)].legal_until == BIRTH + timedelta(days=224)
    # A child started on the monovalent vaccine gets its two-dose series instead.
    mono = by_key(schedule(BIRTH, [("Rota1", date(2025, 8, 12))], date(2025, 8, 20)))
    assert ("Rota5", 1) not in mono and mono[("Rota1", 2)].status == NOT_YET
    assert ("Rota1", 3) not in mono


def test_overdue_and_closed() -> None:
    today = add_months(BIRTH, 13)
    s = by_key(schedule(BIRTH, [], today))
    assert s[("DPT-IPV-Hib", 1)].status == OVERDUE  # standard 2–7 months, funded until 90
    assert s[("BCG", 1)].status == CLOSED  # funded only before the first birthday
    assert s[("HepB", 1)].status == CLOSED and s[("HepB", 3)].status == CLOSED
    assert s[("MR", 1)].status == DUE


def test_injected_live_vaccines_are_27_days_apart() -> None:
    mr = add_months(BIRTH, 12) + timedelta(days=3)
    s = by_key(schedule(BIRTH, [("MR", mr)], mr + timedelta(days=5)))
    vzv = s[("VZV", 1)]
    assert vzv.earliest == mr + timedelta(days=28) and vzv.status == NOT_YET
    assert "live_gap" in vzv.notes
    # Rotavirus is oral, not injected: it does not push BCG.
    s = by_key(schedule(BIRTH, [("Rota5", date(2025, 11, 9))], date(2025, 11, 10)))
    assert s[("BCG", 1)].earliest == BIRTH and not s[("BCG", 1)].notes


def test_mr_stage_2_is_the_year_before_school() -> None:
    for birth, year in ((date(2020, 4, 1), 2025), (date(2020, 4, 2), 2026)):
        stage2 = by_key(schedule(birth, [], birth + timedelta(days=10)))[("MR", 2)]
        assert stage2.earliest == date(year, 4, 1)
        assert stage2.legal_until == date(year + 1, 3, 31)
    # Stage 2 does not wait for a missed stage 1.
    birth = date(2019, 6, 1)
    s = by_key(schedule(birth, [], date(2025, 6, 1)))
    assert s[("MR", 1)].status == CLOSED and s[("MR", 2)].status == DUE


def test_hpv_window_by_school_year_for_girls() -> None:
    birth = date(2012, 6, 15)
    hpv = by_key(schedule(birth, [], date(2024, 3, 1), "female"))[("HPV", 1)]
    assert hpv.earliest == date(2024, 4, 1)  # 小6: the school year she turns 12
    assert hpv.legal_until == date(2029, 3, 31)  # 高1: the school year she turns 16
    assert hpv.standard_from == date(2025, 4, 1)  # 中1
    assert hpv.status == NOT_YET
    assert ("HPV", 1) not in by_key(schedule(birth, [], date(2024, 3, 1), "male"))


def test_legacy_four_in_one_adds_hib() -> None:
    s = by_key(schedule(BIRTH, [("DPT-IPV", date(2025, 8, 12))], date(2025, 8, 20)))
    assert s[("DPT-IPV-Hib", 1)].status == DONE  # the DPT-IPV dose counts for the series
    assert s[("Hib", 1)].status == DUE


def test_due_soon_for_notices() -> None:
    today = add_months(BIRTH, 2) - timedelta(days=5)
    soon = due_soon(schedule(BIRTH, [], today), today, within_days=7)
    names = {(s.series, s.number) for s in soon}
    assert {("HepB", 1), ("DPT-IPV-Hib", 1), ("PCV", 1)} <= names
    assert ("HepB", 2) not in names and ("BCG", 1) not in names


def test_doses_from_fhir_immunizations() -> None:
    def imm(code: str, when: str, status: str = "completed", system: str | None = None) -> dict:
        return {
            "resourceType": "Immunization",
            "status": status,
            "vaccineCode": {
                "coding": [{"system": system or "urn:phr-platform:code:vaccine", "code": code}]
            },
            "occurrenceDateTime": when,
        }

    doses = doses_from([
        imm("HepB", "2025-08-12"),
        imm("MR", "2026-06-11T10:00:00+09:00"),
        imm("HepB", "2025-09-12", status="entered-in-error"),
        imm("631340QE1020", "2025-09-12", system="http://example.org/yj"),
        imm("BCG", "not a date"),
    ])  # fmt: skip
    assert doses == [Dose("HepB", date(2025, 8, 12)), Dose("MR", date(2026, 6, 11))]


def test_pneumococcal_doses_follow_the_starting_age() -> None:
    def pcv(doses: list[tuple[str, date]], today: date) -> list[DoseStatus]:
        return [s for s in schedule(BIRTH, doses, today) if s.series == "PCV"]

    assert [s.label for s in pcv([], add_months(BIRTH, 3))] == [
        "初回 1回目", "初回 2回目", "初回 3回目", "追加"]  # fmt: skip
    assert [s.label for s in pcv([], add_months(BIRTH, 8))] == ["初回 1回目", "初回 2回目", "追加"]
    late = pcv([("PCV20", add_months(BIRTH, 13))], add_months(BIRTH, 13))
    assert [s.label for s in late] == ["1回目", "2回目"]
    assert late[1].earliest == add_months(BIRTH, 13) + timedelta(days=61)
    assert [s.label for s in pcv([], add_months(BIRTH, 30))] == ["1回"]
    # Started at 2 months, dose 2 after 12 months: no dose 3, the booster follows dose 2.
    skipped = pcv([("PCV20", date(2025, 8, 12)), ("PCV15", date(2026, 6, 20))], date(2026, 7, 1))
    assert [(s.label, s.status) for s in skipped] == [
        ("初回 1回目", DONE), ("初回 2回目", DONE), ("追加", NOT_YET)]  # fmt: skip
    assert skipped[2].earliest == date(2026, 6, 20) + timedelta(days=61)
