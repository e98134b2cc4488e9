"""A deliberately small table of Japan's routine childhood immunizations (定期接種), enough to
say which dose of each vaccine comes next and from when.

Simplified from the MHLW 定期接種実施要領 as restated by city health pages (2024–2026): standard
start ages, minimum intervals and the upper end of the publicly funded age window. It ignores
catch-up rules, product switches and the live-vaccine spacing rule, so it is an example, not
medical advice. The platform has its own full schedule engine; an app would normally show the
city's own recommendations (FHIR ImmunizationRecommendation) once they are available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Dose:
    label_ja: str
    label_en: str
    from_days: int  # standard start age, in days
    after_prev_days: int  # minimum interval after the previous dose of the series
    until_days: int  # the publicly funded window ends the day before this age


@dataclass(frozen=True)
class Vaccine:
    codes: frozenset[str]  # the codes the city's register uses for it (any product)
    name_ja: str
    name_en: str
    doses: tuple[Dose, ...]


M = 30  # a month, roughly; the real rules count in calendar months
Y = 365

SCHEDULE: tuple[Vaccine, ...] = (
    Vaccine(frozenset({"HepB"}), "B型肝炎", "Hepatitis B", (
        Dose("1回目", "dose 1", 2 * M, 0, Y),
        Dose("2回目", "dose 2", 3 * M, 27, Y),
        Dose("3回目", "dose 3", 7 * M, 112, Y),
    )),
    Vaccine(frozenset({"Rota1", "Rota5"}), "ロタウイルス", "Rotavirus", (
        Dose("1回目", "dose 1", 2 * M, 0, 15 * 7),
        Dose("2回目", "dose 2", 3 * M, 27, 32 * 7),
        Dose("3回目（5価）", "dose 3 (RotaTeq)", 4 * M, 27, 32 * 7),
    )),
    Vaccine(frozenset({"DPT-IPV-Hib", "DPT-IPV"}), "五種混合", "DTaP-IPV-Hib", (
        Dose("1期初回 1回目", "primary 1", 2 * M, 0, 90 * M),
        Dose("1期初回 2回目", "primary 2", 3 * M, 20, 90 * M),
        Dose("1期初回 3回目", "primary 3", 4 * M, 20, 90 * M),
        Dose("1期追加", "booster", 12 * M, 6 * M, 90 * M),
    )),
    Vaccine(frozenset({"PCV15", "PCV20", "PCV13"}), "小児用肺炎球菌", "Pneumococcal (PCV)", (
        Dose("初回 1回目", "primary 1", 2 * M, 0, 60 * M),
        Dose("初回 2回目", "primary 2", 3 * M, 27, 60 * M),
        Dose("初回 3回目", "primary 3", 4 * M, 27, 60 * M),
        Dose("追加", "booster", 12 * M, 60, 60 * M),
    )),
    Vaccine(frozenset({"BCG"}), "BCG", "BCG", (Dose("1回", "single dose", 5 * M, 0, Y),)),
    Vaccine(frozenset({"MR"}), "麻しん風しん（MR）", "Measles-rubella (MR)", (
        Dose("1期", "first", Y, 0, 2 * Y),
        Dose("2期（年長）", "second (year before school)", 5 * Y, 0, 7 * Y),
    )),
    Vaccine(frozenset({"VZV"}), "水痘", "Varicella", (
        Dose("1回目", "dose 1", Y, 0, 3 * Y),
        Dose("2回目", "dose 2", Y + 6 * M, 3 * M, 3 * Y),
    )),
    Vaccine(frozenset({"JE"}), "日本脳炎", "Japanese encephalitis", (
        Dose("1期初回 1回目", "primary 1", 3 * Y, 0, 90 * M),
        Dose("1期初回 2回目", "primary 2", 3 * Y, 6, 90 * M),
        Dose("1期追加", "booster", 4 * Y, 6 * M, 90 * M),
        Dose("2期", "second", 9 * Y, 0, 13 * Y),
    )),
    Vaccine(frozenset({"DT"}), "二種混合（DT）", "DT", (Dose("2期", "second", 11 * Y, 0, 13 * Y),)),
)  # fmt: skip


@dataclass(frozen=True)
class NextDose:
    vaccine: Vaccine
    dose: Dose
    done: int  # doses already given
    due: date  # from when the next dose can be given
    until: date  # last day of the publicly funded window
    status: str  # upcoming | due | overdue

    def status_text(self) -> tuple[str, str]:
        return {
            "upcoming": ("予定", "upcoming"),
            "due": ("接種できます", "due now"),
            "overdue": ("公費の期間を過ぎています", "past the funded age"),
        }[self.status]


def next_doses(birth: date, given: dict[str, list[date]], today: date) -> list[NextDose]:
    """For each vaccine not yet complete, its next dose: `given` maps a register code to the
    dates it was given. Sorted by the date the dose is due."""
    out: list[NextDose] = []
    for vaccine in SCHEDULE:
        dates = sorted(d for code in vaccine.codes for d in given.get(code, []))
        if len(dates) >= len(vaccine.doses):
            continue
        dose = vaccine.doses[len(dates)]
        due = birth + timedelta(days=dose.from_days)
        if dates:
            due = max(due, dates[-1] + timedelta(days=dose.after_prev_days))
        until = birth + timedelta(days=dose.until_days) - timedelta(days=1)
        status = "overdue" if today > until else ("due" if today >= due else "upcoming")
        out.append(NextDose(vaccine, dose, len(dates), due, until, status))
    return sorted(out, key=lambda n: n.due)
