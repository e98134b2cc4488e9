"""Japan's routine childhood immunizations (定期接種): which dose is done, due, overdue or not
yet, and from when, for one child. Pure: no I/O, no clock (the caller passes `today`), so the
portal's schedule page and the "vaccination due" notices compute the same thing.

The rules are in portal/care/vaccine_rules.py (with their sources), the age and interval
arithmetic in portal/care/ages.py (with the law it follows).

Dependencies: a dose of a series waits for every earlier dose of its stage (dose 3 of hepatitis B
waits for dose 2, not only for the 139 days after dose 1); it is never due or overdue while an
earlier one is missing. Only the stages the 施行令 lists as separate (MR 2期, JE 2期) stand alone.
Recorded doses are placed by `protocolApplied.series` (期別) and `doseNumber` when the record has
them, and by date order otherwise. What is left out is in `NOT_COVERED`.

Vaccines are matched by the platform's local vaccine codes (`urn:phr-platform:code:vaccine`,
as the connectors write them: HepB, Rota1, Rota5, DPT-IPV-Hib, DPT-IPV, Hib, PCV13/15/20, BCG,
MR, VZV, JE, DT, HPV).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from portal.care.ages import (
    add_months,
    age_day,
    fiscal_turning,
    months_after,
    reach,
    school_entry,
)
from portal.care.vaccine_rules import (
    HIB,
    HIB_BOOSTER_AFTER_LAPSED,
    HIB_FROM_1_YEAR,
    INJECTED_LIVE,
    LIVE_GAP_DAYS,
    PCV_FROM_1_YEAR,
    PCV_FROM_2_YEARS,
    SERIES,
    Rule,
    Series,
)

VACCINE_SYSTEM = "urn:phr-platform:code:vaccine"

DONE = "done"
DUE = "due"
OVERDUE = "overdue"
NOT_YET = "not_yet"
CLOSED = "closed"  # past the publicly funded (routine) window and not given

NOT_COVERED = (
    "HPV dose 2 and 3 (their number and spacing depend on the product and the age at dose 1)",
    "the maternal RSV vaccine (given to the pregnant person, not the child)",
    "the Japanese encephalitis special rule for people born 1995-04-02 to 2007-04-01",
    "infants of HBs-positive mothers (insurance-covered protocol instead of the routine)",
)


@dataclass(frozen=True)
class DoseStatus:
    series: str
    name_ja: str
    name_en: str
    number: int  # 1-based within the series
    label: str
    label_en: str
    status: str  # done | due | overdue | not_yet | closed
    given_on: date | None = None
    earliest: date | None = None  # the first day it may be given (None when done)
    standard_from: date | None = None
    standard_until: date | None = None  # last day of the standard period
    legal_until: date | None = None  # last day of the funded window
    notes: tuple[str, ...] = field(default_factory=tuple)
    waiting_for: int | None = None  # the earlier dose (number) that must be given first

    @property
    def next_date(self) -> date | None:
        """When this dose is next to be given: the earliest allowed day, or the start of the
        standard period when that is later and not reached yet (None when done or closed)."""
        if self.status in (DONE, CLOSED) or self.earliest is None:
            return None
        if self.status == NOT_YET and self.standard_from and self.standard_from > self.earliest:
            return self.standard_from
        return self.earliest


@dataclass(frozen=True)
class Dose:
    """A recorded dose: the vaccine code, the day it was given and, when the record says so,
    its stage (`protocolApplied.series`, the 期別) and number within that stage."""

    code: str
    given_on: date
    number: int | None = None
    stage: str | None = None


def _series_for(sex: str | None, doses: Sequence[Dose]) -> list[Series]:
    codes = {d.code for d in doses}
    out: list[Series] = []
    for s in SERIES:
        if s.sex is not None and sex != s.sex:
            continue
        if s.key == "Rota1" and "Rota1" not in codes:
            continue  # 5価 is shown unless the child started on 1価
        if s.key == "Rota5" and "Rota1" in codes and "Rota5" not in codes:
            continue
        out.append(s)
        if s.key == "DPT-IPV-Hib" and ("DPT-IPV" in codes or "Hib" in codes):
            out.append(HIB)
    return out


def _hib(base: Series, birth: date, doses: Sequence[Dose], today: date) -> Series:
    """Hib doses by the age the series starts at (定期接種実施要領, restated by Aioi, Otsuchi,
    Higashikurume, Ikeda): started by 7 months 3 + booster; from the day after 7 months to 12
    months 2 + booster; from the day after 12 months to 60 months one dose. Primaries not given
    by 12 months are not given; the booster then follows the last one after 27 days or more
    (「追加接種は可能…初回接種の最後の注射終了後、27日以上の間隔をおいて1回」)."""
    given = sorted(d.given_on for d in doses if d.code in base.codes)
    start = given[0] if given else max(today, reach(birth, 2))
    d1, d2, d3, booster = base.doses
    if start > reach(birth, 12):
        return replace(base, doses=(HIB_FROM_1_YEAR,))
    primaries = (d1, d2, d3) if start <= reach(birth, 7) else (d1, d2)
    if given and len(given) < len(primaries):
        following = max(today, given[-1] + timedelta(days=28))
        if following > reach(birth, 12):
            return replace(base, doses=(*primaries[: len(given)], HIB_BOOSTER_AFTER_LAPSED))
    return replace(base, doses=(*primaries, booster))


def _pcv(base: Series, birth: date, doses: Sequence[Dose], today: date) -> Series:
    """Pneumococcal doses by the age the series starts at (定期接種実施要領, restated by Tamba,
    Sanuki, Nikko, Chippubetsu): started by 7 months 3 + booster, and dose 3 is not given when
    dose 2 comes after 12 months; started from the day after 7 months to 12 months 2 + booster;
    from the day after 12 months to 24 months 2 doses 60 days apart; after 24 months one dose."""
    given = sorted(d.given_on for d in doses if d.code in base.codes)
    start = given[0] if given else max(today, reach(birth, 2))
    d1, d2, _, booster = base.doses
    if start <= reach(birth, 7):
        second = given[1] if len(given) >= 2 else max(today, start + timedelta(days=28))
        if len(given) < 3 and second > reach(birth, 12):
            return replace(base, doses=(d1, d2, booster))
        return base
    if start <= reach(birth, 12):
        return replace(base, doses=(d1, d2, booster))
    if start <= reach(birth, 24):
        return replace(base, doses=PCV_FROM_1_YEAR)
    return replace(base, doses=(PCV_FROM_2_YEARS,))


def schedule(
    birth_date: date,
    doses: Iterable[Dose | tuple[str, date]],
    today: date,
    sex: str | None = None,
) -> list[DoseStatus]:
    """Every routine dose for a child born on `birth_date`, given the recorded `doses`, as of
    `today`: the series in table order, the doses in series order."""
    recorded = sorted(
        (d if isinstance(d, Dose) else Dose(d[0], d[1]) for d in doses), key=lambda d: d.given_on
    )
    live_given = [d.given_on for d in recorded if d.code in INJECTED_LIVE]
    out: list[DoseStatus] = []
    for series in _series_for(sex, recorded):
        if series.key == "PCV":
            series = _pcv(series, birth_date, recorded, today)
        elif series.key == "Hib":
            series = _hib(series, birth_date, recorded, today)
        slots = place([d for d in recorded if d.code in series.codes], series.doses, birth_date)
        state = _SeriesState()
        for i, rule in enumerate(series.doses):
            out.append(_one(series, i, rule, birth_date, slots.get(i), state, live_given, today))
    return out


def place(doses: Sequence[Dose], rules: Sequence[Rule], birth: date) -> dict[int, date]:
    """Which rule (0-based) each recorded dose fills. A dose whose record names its stage and
    number goes to that dose (「2期」 1 → JE 2期, never 1期); a number alone counts within the
    series. The others fill the free doses in date order, each the first free one whose funded
    window contains its date, else the first free one (a dose given outside the funded window,
    e.g. voluntarily, still counts)."""
    slots: dict[int, date] = {}
    rest: list[Dose] = []
    for d in sorted(doses, key=lambda d: d.given_on):
        i = _numbered(d, rules)
        if i is None or i in slots:
            rest.append(d)
        else:
            slots[i] = d.given_on
    for d in rest:
        free = [i for i in range(len(rules)) if i not in slots]
        if not free:
            break
        fits = [i for i in free if _in_window(rules[i], birth, d.given_on)]
        # An unlabelled dose fills a stage of its own (MR 2期, JE 2期) only when it fits
        # no earlier free dose's window.
        slots[fits[0] if fits else free[0]] = d.given_on
    return slots


def _numbered(d: Dose, rules: Sequence[Rule]) -> int | None:
    if d.number is None or d.number < 1:
        return None
    stage = (d.stage or "").replace(" ", "").replace("　", "")
    if stage:
        exact = [i for i, r in enumerate(rules) if r.stage == stage]
        within = exact or [
            i for i, r in enumerate(rules)
            if r.stage and (r.stage.startswith(stage) or r.stage.endswith(stage))
        ]  # fmt: skip
        if within:
            return within[d.number - 1] if d.number <= len(within) else None
    return d.number - 1 if d.number <= len(rules) else None


def _in_window(rule: Rule, birth: date, day: date) -> bool:
    start, until = _window(rule, birth)
    return start <= day and (until is None or day <= until)


def _window(rule: Rule, birth: date) -> tuple[date, date | None]:
    """The funded window of one dose by age alone: its first and last day (施行令 第3条)."""
    start = age_day(birth, rule.min_age_m, rule.min_age_d)
    until = _legal_until(rule, birth)
    if rule.school_year_before_entry:
        entry = school_entry(birth)
        start, until = max(start, date(entry.year - 1, 4, 1)), entry - timedelta(days=1)
    if rule.fiscal_age_from is not None:
        start = max(start, date(fiscal_turning(birth, rule.fiscal_age_from), 4, 1))
        until = date(fiscal_turning(birth, rule.fiscal_age_until or 16) + 1, 3, 31)
    return start, until


@dataclass
class _SeriesState:
    """What the earlier doses of a series left: the day each was (or could at the earliest
    be) given, which were closed (and block the rest) or skipped (and do not), and the first
    one still missing."""

    projected: dict[int, date] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    missing: int | None = None  # 0-based index of the first dose not given


def _anchor(state: _SeriesState, i: int) -> tuple[int, date] | None:
    """The dose the interval counts from: the previous one not skipped (None when a closed
    dose blocks the rest)."""
    for j in range(i - 1, -1, -1):
        if j in state.skipped:
            continue
        if j in state.closed:
            return None
        if j in state.projected:
            return j, state.projected[j]
    return None


def _one(
    series: Series,
    i: int,
    rule: Rule,
    birth: date,
    given: date | None,
    state: _SeriesState,
    live_given: list[date],
    today: date,
) -> DoseStatus:
    base: dict[str, Any] = dict(
        series=series.key, name_ja=series.name_ja, name_en=series.name_en, number=i + 1,
        label=rule.label, label_en=rule.label_en,
    )  # fmt: skip
    window_from, legal_until = _window(rule, birth)
    std_from = age_day(birth, rule.std_from_m) if rule.std_from_m is not None else None
    std_until = reach(birth, rule.std_until_m) if rule.std_until_m is not None else None
    if rule.std_until_d is not None:
        std_until = birth + timedelta(days=rule.std_until_d)
    if rule.school_year_before_entry:
        std_from, std_until = window_from, legal_until
    if rule.fiscal_age_from is not None:
        # HPV: standard 中1, the fiscal year the girl turns 13 (要領, restated).
        std_from = date(fiscal_turning(birth, 13), 4, 1)
        std_until = date(fiscal_turning(birth, 13) + 1, 3, 31)
    if given is not None:
        state.projected[i] = given
        return DoseStatus(**base, status=DONE, given_on=given, standard_from=std_from,
                          standard_until=std_until, legal_until=legal_until)  # fmt: skip
    notes: list[str] = []
    earliest = window_from
    dependent = i > 0 and not rule.independent
    anchor = _anchor(state, i) if dependent else None
    if anchor is not None:
        _, prev = anchor
        # Never the same day as, nor before, the dose it follows.
        earliest = max(earliest, prev + timedelta(days=1))
        if rule.after_dose is not None:
            first = state.projected.get(rule.after_dose - 1)
            if first is not None:
                earliest = max(earliest, first + timedelta(days=rule.after_prev_d + 1))
            earliest = max(earliest, prev + timedelta(days=rule.also_after_prev_d + 1))
        elif rule.after_prev_d:
            earliest = max(earliest, prev + timedelta(days=rule.after_prev_d + 1))
        if rule.after_prev_m:
            earliest = max(earliest, months_after(prev, rule.after_prev_m))
        if rule.std_after_prev_from_m is not None:
            std_from = add_months(prev, rule.std_after_prev_from_m)
            std_until = add_months(prev, rule.std_after_prev_until_m or 0) - timedelta(days=1)
        if rule.std_after_prev_until_d is not None:
            std_until = prev + timedelta(days=rule.std_after_prev_until_d + 1)
    if series.key in INJECTED_LIVE or series.codes & INJECTED_LIVE:
        # 27 whole days after any other injected live vaccine (LIVE_GAP_DAYS).
        for other in live_given:
            if other <= today and other + timedelta(days=LIVE_GAP_DAYS + 1) > earliest:
                earliest = other + timedelta(days=LIVE_GAP_DAYS + 1)
                notes.append("live_gap")
    waiting = state.missing if dependent else None
    status = NOT_YET
    if legal_until is not None and (today > legal_until or earliest > legal_until):
        status = CLOSED
    elif dependent and anchor is None:
        status = CLOSED  # e.g. rotavirus not started by 14 weeks 6 days: no later doses
    elif waiting is None and earliest <= today and (std_from is None or today >= std_from):
        status = OVERDUE if std_until is not None and today > std_until else DUE
    if status == CLOSED:
        waiting = None
        (state.skipped if rule.skippable else state.closed).add(i)
    else:
        state.projected[i] = max(earliest, today)
        if state.missing is None and not rule.independent:
            state.missing = i
    return DoseStatus(**base, status=status, earliest=earliest, standard_from=std_from,
                      standard_until=std_until, legal_until=legal_until, notes=tuple(notes),
                      waiting_for=None if waiting is None else waiting + 1)  # fmt: skip


def _legal_until(rule: Rule, birth: date) -> date | None:
    """The last funded day: the day the age the window runs to is reached (「至るまで」
    includes it); in weeks and days (rotavirus), that many days from birth."""
    if rule.legal_until_d is not None:
        return birth + timedelta(days=rule.legal_until_d)
    if rule.legal_until_m is not None:
        return reach(birth, rule.legal_until_m)
    return None


def due_soon(
    statuses: Iterable[DoseStatus], today: date, within_days: int = 14
) -> list[DoseStatus]:
    """Doses a notice should mention: due or overdue now, or whose next date comes within
    `within_days` and that wait for no earlier dose (for the "vaccination due" notices)."""
    horizon = today + timedelta(days=within_days)
    return [
        s
        for s in statuses
        if s.status in (DUE, OVERDUE)
        or (
            s.status == NOT_YET
            and s.waiting_for is None
            and s.next_date is not None
            and s.next_date <= horizon
        )
    ]


def codes_of(immunization: dict) -> list[str]:
    """The local vaccine codes of an Immunization resource (connector coding)."""
    return [
        c["code"]
        for c in (immunization.get("vaccineCode") or {}).get("coding", [])
        if c.get("system") == VACCINE_SYSTEM and c.get("code")
    ]


def _protocol(immunization: dict) -> tuple[int | None, str | None]:
    """The dose number and stage (期別) of the first `protocolApplied`, when present: FHIR R4
    `doseNumberPositiveInt` / `doseNumberString`, R5 `doseNumber`, and `series`."""
    for p in immunization.get("protocolApplied") or []:
        raw = p.get("doseNumberPositiveInt", p.get("doseNumberString", p.get("doseNumber")))
        number = int(raw) if isinstance(raw, int) or str(raw or "").isdigit() else None
        series = p.get("series")
        return number, series if isinstance(series, str) and series.strip() else None
    return None, None


def doses_from(immunizations: Iterable[dict]) -> list[Dose]:
    """Recorded doses from FHIR Immunizations (completed ones with a date)."""
    out: list[Dose] = []
    for imm in immunizations:
        if imm.get("status", "completed") != "completed":
            continue
        when = str(imm.get("occurrenceDateTime") or "")[:10]
        try:
            day = date.fromisoformat(when)
        except ValueError:
            continue
        number, stage = _protocol(imm)
        out.extend(Dose(code, day, number, stage) for code in codes_of(imm))
    return out
