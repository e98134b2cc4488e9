"""Japan's routine childhood immunizations (定期接種): which dose is done, due, overdue or not
yet, and from when, for one child. Pure: no I/O, no clock (the caller passes `today`), so the
portal's schedule page and the "vaccination due" notices compute the same thing.

Source: ../shared/reference/mch.md §6 (city pages restating the MHLW 定期接種実施要領; the
実施要領 itself was not read, so the table is "partly verified" there). What this module decides
on its own, and why, is marked INTERPRETATION below; what it leaves out is in `NOT_COVERED`.

Vaccines are matched by the platform's local vaccine codes (`urn:phr-platform:code:vaccine`,
as the connectors write them: HepB, Rota1, Rota5, DPT-IPV-Hib, DPT-IPV, Hib, PCV13/15/20, BCG,
MR, VZV, JE, DT, HPV).

Ages (checked against city pages restating the MHLW 事務連絡「定期の予防接種における対象者の
解釈について」, e.g. Tome city, and the 年齢計算ニ関スル法律 / 民法143条): a child reaches N months
(or years) at the end of the day before the corresponding day, or on the last day of the month
when that month has no corresponding day (`reach`); "from N months" starts on that day, and
"until N months" (「…に至るまで」) includes it. Born 2020-04-01: 1 year on 2021-03-31, the last
day under 1 and the first day from 1.
Intervals (the same sources): "at least N days" means N whole days between (中N日), so the next
dose may be given N + 1 days after the previous one (27 days: the same weekday four weeks
later); "N months" means from the corresponding day N months later (`months_after`). Rotavirus
ages count the day of birth as 0 weeks 0 days, and both "from" and "until" include the day.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

VACCINE_SYSTEM = "urn:phr-platform:code:vaccine"

DONE = "done"
DUE = "due"
OVERDUE = "overdue"
NOT_YET = "not_yet"
CLOSED = "closed"  # past the publicly funded (routine) window and not given

INJECTED_LIVE = {"BCG", "MR", "VZV"}
LIVE_GAP_DAYS = 27  # injected live → injected live: 27 whole days between (mch.md §6.1)

NOT_COVERED = (
    "Hib catch-up rules that reduce the number of doses when a child starts late (legacy)",
    "HPV dose 2 and 3 (their number and spacing depend on the product and the age at dose 1)",
    "the maternal RSV vaccine (given to the pregnant person, not the child)",
    "the Japanese encephalitis special rule for people born 1995-04-02 to 2007-04-01",
    "infants of HBs-positive mothers (insurance-covered protocol instead of the routine)",
)


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Rule:
    """One dose of a series. Ages in months from birth (days where noted), windows inclusive
    of the start and exclusive of the end (the end is 'until', 「至るまで」)."""

    label: str  # e.g. 1期初回 1回目
    label_en: str
    min_age_m: int = 0
    min_age_d: int = 0  # extra days (e.g. 6 weeks = 42 days)
    legal_until_m: int | None = None  # funded until this age (months)
    legal_until_d: int | None = None  # … or until this many days after birth, inclusive
    # (rotavirus: the day of birth is "0 weeks 0 days"; "until 24 weeks 0 days" includes it)
    std_from_m: int | None = None
    std_until_m: int | None = None
    after_prev_d: int = 0  # whole days after the previous dose of the series
    after_prev_m: int = 0  # or months after it (same day of the month)
    after_dose: int | None = None  # …counted from this dose (1-based) instead of the previous
    std_after_prev_until_m: int | None = None  # standard: within N months after previous
    std_after_prev_from_m: int | None = None
    independent: bool = False  # a stage of its own (MR 2期, JE 2期): not blocked by earlier doses
    school_year_before_entry: bool = False  # MR 2期: 年長 (April–March before school)
    fiscal_age_from: int | None = None  # HPV: from the fiscal year the child turns this age
    fiscal_age_until: int | None = None  # …to the end of the fiscal year they turn this age


@dataclass(frozen=True)
class Series:
    key: str  # the primary vaccine code
    name_ja: str
    name_en: str
    codes: frozenset[str]  # vaccine codes that count as doses of this series
    doses: tuple[Rule, ...]
    sex: str | None = None  # only for this Patient.gender


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

    @property
    def next_date(self) -> date | None:
        """When this dose is next to be given: the earliest allowed day, or the start of the
        standard period when that is later and not reached yet (None when done or closed)."""
        if self.status in (DONE, CLOSED) or self.earliest is None:
            return None
        if self.status == NOT_YET and self.standard_from and self.standard_from > self.earliest:
            return self.standard_from
        return self.earliest


M = Rule  # short alias for the table

# Both rotavirus products start alike: from 6 weeks, by 14 weeks 6 days (day of birth = 0w0d).
ROTA_DOSE_1 = M(
    "1回目",
    "dose 1",
    min_age_d=42,
    legal_until_d=14 * 7 + 6,
    std_from_m=2,
    std_until_m=3,
)

SERIES: tuple[Series, ...] = (
    Series(
        "HepB",
        "B型肝炎",
        "Hepatitis B",
        frozenset({"HepB"}),
        (
            M("1回目", "dose 1", legal_until_m=12, std_from_m=2, std_until_m=3),
            M("2回目", "dose 2", legal_until_m=12, after_prev_d=27, std_from_m=3, std_until_m=4),
            M(
                "3回目",
                "dose 3",
                legal_until_m=12,
                after_prev_d=139,
                after_dose=1,
                std_from_m=7,
                std_until_m=9,
            ),
        ),
    ),
    Series(
        "Rota1",
        "ロタウイルス（1価）",
        "Rotavirus (monovalent)",
        frozenset({"Rota1"}),
        (
            ROTA_DOSE_1,
            M("2回目", "dose 2", min_age_d=42, legal_until_d=24 * 7, after_prev_d=27),
        ),
    ),
    Series(
        "Rota5",
        "ロタウイルス（5価）",
        "Rotavirus (pentavalent)",
        frozenset({"Rota5"}),
        (
            ROTA_DOSE_1,
            M("2回目", "dose 2", min_age_d=42, legal_until_d=32 * 7, after_prev_d=27),
            M("3回目", "dose 3", min_age_d=42, legal_until_d=32 * 7, after_prev_d=27),
        ),
    ),
    Series(
        "DPT-IPV-Hib",
        "五種混合",
        "DTaP-IPV-Hib",
        frozenset({"DPT-IPV-Hib", "DPT-IPV"}),
        (
            M(
                "1期初回 1回目",
                "primary dose 1",
                min_age_m=2,
                legal_until_m=90,
                std_from_m=2,
                std_until_m=7,
            ),
            M(
                "1期初回 2回目",
                "primary dose 2",
                min_age_m=2,
                legal_until_m=90,
                after_prev_d=20,
                std_from_m=2,
                std_until_m=8,
            ),
            M(
                "1期初回 3回目",
                "primary dose 3",
                min_age_m=2,
                legal_until_m=90,
                after_prev_d=20,
                std_from_m=2,
                std_until_m=9,
            ),
            M(
                "1期追加",
                "booster",
                min_age_m=2,
                legal_until_m=90,
                after_prev_m=6,
                std_after_prev_from_m=6,
                std_after_prev_until_m=18,
            ),
        ),
    ),
    Series(
        "PCV",
        "小児用肺炎球菌",
        "Pneumococcal (PCV)",
        frozenset({"PCV20", "PCV15", "PCV13"}),
        (
            M(
                "初回 1回目",
                "primary dose 1",
                min_age_m=2,
                legal_until_m=60,
                std_from_m=2,
                std_until_m=7,
            ),
            M(
                "初回 2回目",
                "primary dose 2",
                min_age_m=2,
                legal_until_m=24,
                after_prev_d=27,
                std_from_m=3,
                std_until_m=8,
            ),
            M(
                "初回 3回目",
                "primary dose 3",
                min_age_m=2,
                legal_until_m=24,
                after_prev_d=27,
                std_from_m=4,
                std_until_m=12,
            ),
            M(
                "追加",
                "booster",
                min_age_m=12,
                legal_until_m=60,
                after_prev_d=60,
                std_from_m=12,
                std_until_m=15,
            ),
        ),
    ),
    Series(
        "BCG",
        "BCG",
        "BCG",
        frozenset({"BCG"}),
        (M("1回", "single dose", legal_until_m=12, std_from_m=5, std_until_m=8),),
    ),
    Series(
        "MR",
        "麻しん風しん（MR）",
        "Measles-rubella (MR)",
        frozenset({"MR"}),
        (
            M("1期", "stage 1", min_age_m=12, legal_until_m=24),
            M("2期", "stage 2", min_age_m=60, school_year_before_entry=True, independent=True),
        ),
    ),
    Series(
        "VZV",
        "水痘",
        "Varicella",
        frozenset({"VZV"}),
        (
            M("1回目", "dose 1", min_age_m=12, legal_until_m=36, std_from_m=12, std_until_m=15),
            M(
                "2回目",
                "dose 2",
                min_age_m=12,
                legal_until_m=36,
                after_prev_m=3,
                std_after_prev_from_m=6,
                std_after_prev_until_m=12,
            ),
        ),
    ),
    Series(
        "JE",
        "日本脳炎",
        "Japanese encephalitis",
        frozenset({"JE"}),
        (
            M(
                "1期初回 1回目",
                "primary dose 1",
                min_age_m=6,
                legal_until_m=90,
                std_from_m=36,
                std_until_m=48,
            ),
            M(
                "1期初回 2回目",
                "primary dose 2",
                min_age_m=6,
                legal_until_m=90,
                after_prev_d=6,
                std_from_m=36,
                std_until_m=48,
            ),
            M(
                "1期追加",
                "booster",
                min_age_m=6,
                legal_until_m=90,
                after_prev_m=6,
                std_from_m=48,
                std_until_m=60,
            ),
            M(
                "2期",
                "stage 2",
                min_age_m=108,
                legal_until_m=156,
                std_from_m=108,
                std_until_m=120,
                independent=True,
            ),
        ),
    ),
    Series(
        "DT",
        "二種混合（DT）",
        "Diphtheria-tetanus (DT)",
        frozenset({"DT"}),
        (M("2期", "stage 2", min_age_m=132, legal_until_m=156, std_from_m=132, std_until_m=144),),
    ),
    Series(
        "HPV",
        "ヒトパピローマウイルス（HPV）",
        "HPV",
        frozenset({"HPV"}),
        (
            M(
                "1回目",
                "dose 1",
                fiscal_age_from=12,
                fiscal_age_until=16,
                std_from_m=156,
                std_until_m=168,
            ),
        ),
        sex="female",
    ),
)

# Legacy: a child who started 四種混合 (DPT-IPV) finishes with it and gets Hib separately.
HIB = Series("Hib", "ヒブ", "Hib", frozenset({"Hib"}), (
    M("初回 1回目", "primary dose 1", min_age_m=2, legal_until_m=60, std_from_m=2, std_until_m=7),
    M("初回 2回目", "primary dose 2", min_age_m=2, legal_until_m=12, after_prev_d=27),
    M("初回 3回目", "primary dose 3", min_age_m=2, legal_until_m=12, after_prev_d=27),
    M("追加", "booster", min_age_m=2, legal_until_m=60, after_prev_m=7,
      std_after_prev_from_m=7, std_after_prev_until_m=13),
))  # fmt: skip


@dataclass(frozen=True)
class Dose:
    """A recorded dose: the vaccine code and the day it was given."""

    code: str
    given_on: date


def _fiscal_year_start(d: date) -> int:
    return d.year if d.month >= 4 else d.year - 1


def months_after(given: date, months: int) -> date:
    """The first day a dose may follow `given` after an interval of `months` months: the
    corresponding day, or the first day of the next month when there is none (Natori city's
    restatement of the MHLW interpretation)."""
    clamped = add_months(given, months)
    if clamped.day == given.day:
        return clamped
    return clamped + timedelta(days=1)


def reach(birth: date, months: int) -> date:
    """The day a child born on `birth` reaches `months` months of age (see the module notes)."""
    if months == 0:
        return birth
    y, m = divmod(birth.month - 1 + months, 12)
    year, month = birth.year + y, m + 1
    last = calendar.monthrange(year, month)[1]
    if birth.day > last:
        return date(year, month, last)  # no corresponding day: the month's last day
    return date(year, month, birth.day) - timedelta(days=1)


def _age_day(birth: date, months: int = 0, days: int = 0) -> date:
    return reach(birth, months) + timedelta(days=days)


def _school_entry(birth: date) -> date:
    """April 1 of the year a child starts elementary school: the April after turning 6, with
    children born January 1 – April 1 entering the year they turn 6 (they turn 6 'before' April 2
    under the age-counting law)."""
    year = birth.year + 6 if (birth.month, birth.day) <= (4, 1) else birth.year + 7
    return date(year, 4, 1)


def _fiscal_turning(birth: date, age: int) -> int:
    """The fiscal year (April–March) in which the child turns `age`; someone born April 1 turns
    a year older at the end of March 31 (age-counting law), so belongs to the earlier year."""
    turning = birth.replace(year=birth.year + age) if not (birth.month == 2 and birth.day == 29) \
        else date(birth.year + age, 3, 1)  # fmt: skip
    return _fiscal_year_start(turning - timedelta(days=1))


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


def _pcv(base: Series, birth: date, doses: Sequence[Dose], today: date) -> Series:
    """Pneumococcal doses by the age the series starts at (city pages restating the 実施要領,
    e.g. Sanuki, Kasukabe, Chippubetsu): up to 7 months 3 + booster, and dose 3 is dropped when
    dose 2 comes after 12 months; 7–12 months 2 + booster; 1–2 years 2 doses 60 days apart;
    2–5 years one dose."""
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
    late: dict[str, Any] = dict(min_age_m=12, legal_until_m=60)
    if start <= reach(birth, 24):
        return replace(base, doses=(M("1回目", "dose 1", **late),
                                    M("2回目", "dose 2", after_prev_d=60, **late)))  # fmt: skip
    return replace(base, doses=(M("1回", "single dose", min_age_m=24, legal_until_m=60),))


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
        given = [d.given_on for d in recorded if d.code in series.codes]
        projected: list[date] = []  # the day each dose was (or could at the earliest be) given
        closed: list[bool] = []
        for i, rule in enumerate(series.doses):
            out.append(
                _one(series, i, rule, birth_date, given, projected, closed, live_given, today)
            )
    return out


def _one(
    series: Series,
    i: int,
    rule: Rule,
    birth: date,
    given: list[date],
    projected: list[date],
    closed: list[bool],
    live_given: list[date],
    today: date,
) -> DoseStatus:
    base: dict[str, Any] = dict(
        series=series.key, name_ja=series.name_ja, name_en=series.name_en, number=i + 1,
        label=rule.label, label_en=rule.label_en,
    )  # fmt: skip
    legal_until = _legal_until(rule, birth)
    std_from = _age_day(birth, rule.std_from_m) if rule.std_from_m is not None else None
    std_until = reach(birth, rule.std_until_m) if rule.std_until_m is not None else None
    if rule.school_year_before_entry:
        entry = _school_entry(birth)
        std_from, std_until = date(entry.year - 1, 4, 1), entry - timedelta(days=1)
        legal_until = std_until
    if rule.fiscal_age_from is not None:
        # HPV: 小6 (the fiscal year the girl turns 12) to 高1 (… turns 16); standard 中1 (13).
        legal_until = date(_fiscal_turning(birth, rule.fiscal_age_until or 16) + 1, 3, 31)
        std_from = date(_fiscal_turning(birth, 13), 4, 1)
        std_until = date(_fiscal_turning(birth, 13) + 1, 3, 31)
    if i < len(given):
        projected.append(given[i])
        closed.append(False)
        return DoseStatus(**base, status=DONE, given_on=given[i], standard_from=std_from,
                          standard_until=std_until, legal_until=legal_until)  # fmt: skip
    notes: list[str] = []
    earliest = _age_day(birth, rule.min_age_m, rule.min_age_d)
    if rule.fiscal_age_from is not None:
        earliest = max(earliest, date(_fiscal_turning(birth, rule.fiscal_age_from), 4, 1))
    if rule.school_year_before_entry and std_from is not None:  # (set above in that case)
        earliest = max(earliest, std_from)
    dependent = i > 0 and not rule.independent
    if dependent and (rule.after_prev_d or rule.after_prev_m):
        anchor = projected[(rule.after_dose or i) - 1]
        if rule.after_prev_d:
            earliest = max(earliest, anchor + timedelta(days=rule.after_prev_d + 1))
        if rule.after_prev_m:
            earliest = max(earliest, months_after(anchor, rule.after_prev_m))
    if dependent and rule.std_after_prev_from_m is not None:
        prev = projected[i - 1]
        std_from = add_months(prev, rule.std_after_prev_from_m)
        std_until = add_months(prev, rule.std_after_prev_until_m or 0) - timedelta(days=1)
    if series.key in INJECTED_LIVE or series.codes & INJECTED_LIVE:
        # 27 whole days after any other injected live vaccine (mch.md §6.1).
        for other in live_given:
            if other <= today and other + timedelta(days=LIVE_GAP_DAYS + 1) > earliest:
                earliest = other + timedelta(days=LIVE_GAP_DAYS + 1)
                notes.append("live_gap")
    status = NOT_YET
    if legal_until is not None and (today > legal_until or earliest > legal_until):
        status = CLOSED
    elif dependent and closed[-1]:
        status = CLOSED  # e.g. rotavirus not started by 14 weeks 6 days: no later doses
    elif earliest <= today and (std_from is None or today >= std_from):
        status = OVERDUE if std_until is not None and today > std_until else DUE
    closed.append(status == CLOSED)
    projected.append(max(earliest, today) if status != CLOSED else earliest)
    return DoseStatus(**base, status=status, earliest=earliest, standard_from=std_from,
                      standard_until=std_until, legal_until=legal_until,
                      notes=tuple(notes))  # fmt: skip


def _legal_until(rule: Rule, birth: date) -> date | None:
    """The last funded day: the day the age the window runs to is reached (「至るまで」
    includes it); in weeks and days (rotavirus), the day before that many days from birth."""
    if rule.legal_until_d is not None:
        return birth + timedelta(days=rule.legal_until_d)
    if rule.legal_until_m is not None:
        return reach(birth, rule.legal_until_m)
    return None


def due_soon(
    statuses: Iterable[DoseStatus], today: date, within_days: int = 14
) -> list[DoseStatus]:
    """Doses a notice should mention: due or overdue now, or whose next date comes within
    `within_days` (for the portal's "vaccination due" notifications)."""
    statuses = list(statuses)
    horizon = today + timedelta(days=within_days)
    return [
        s
        for s in statuses
        if s.status in (DUE, OVERDUE)
        or (
            s.status == NOT_YET
            and s.next_date is not None
            and s.next_date <= horizon
            and _previous_done_or_due(statuses, s)
        )
    ]


def _previous_done_or_due(statuses: Iterable[DoseStatus], s: DoseStatus) -> bool:
    return (
        all(
            o.status in (DONE, DUE, OVERDUE)
            for o in statuses
            if o.series == s.series and o.number < s.number
        )
        or s.number == 1
    )


def codes_of(immunization: dict) -> list[str]:
    """The local vaccine codes of an Immunization resource (connector coding)."""
    return [
        c["code"]
        for c in (immunization.get("vaccineCode") or {}).get("coding", [])
        if c.get("system") == VACCINE_SYSTEM and c.get("code")
    ]


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
        out.extend(Dose(code, day) for code in codes_of(imm))
    return out
