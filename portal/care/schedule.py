"""Japan's routine childhood immunizations (定期接種): which dose is done, due, overdue or not
yet, and from when, for one child. Pure: no I/O, no clock (the caller passes `today`), so the
portal's schedule page and the "vaccination due" notices compute the same thing.

Sources, per rule (the `source` of each `Rule`; portal/care/README.md lists them all):
* Who is eligible (the funded age windows): 予防接種法施行令 第3条第1項の表 (旧第1条の3, as in
  force from 2024-04-01 after 令和6年政令第116号; read in the republished text at iuris.jp and
  sn-hoki.co.jp). Verified.
* How (intervals, number of doses by starting age, standard periods): the MHLW 定期接種実施要領
  (別添「定期接種実施要領」第2 各論) and 予防接種実施規則. Neither primary text could be retrieved
  here (searched again on 2026-12-07: page, documentation and code corpora, in Japanese and
  English); every interval below is taken from at least two municipal pages that restate them,
  named in the rule's `source` ("restated"). A third-party transcription of the 要領 (令和8年10月1日
  改正, YouheiOonuki/seido-keisan@38f33cd5 lib/yobosesshu-values.js, "read 2026-10-03") gives
  the same intervals and standard periods and the section of each vaccine (`GUIDE_SECTION`);
  it is a restatement too. The 規則's chapter and article numbers are confirmed in its e-Gov text
  (最終改正 平成28年厚生労働省令第115号; law.e-gov.go.jp/htmldata/S33/S33F03601000027.html) and
  the 2023 table of contents; the article texts are not. All of this is documented as not
  verified against the 要領, in this code and in the README, never shown to parents.
* Age arithmetic: 年齢計算ニ関スル法律 and 民法143条 as applied by the MHLW 事務連絡
  「定期の予防接種における対象者の解釈について」 (restated by Tome and Natori city), and the
  MHLW rotavirus Q&A (問5, on kansensho.jp): a child reaches N months (or years) at the end of
  the day before the corresponding day, or on the last day of the month when that month has no
  corresponding day (`reach`); "from N months" starts on that day, and "until N months"
  (「…に至るまで」) includes it. Born 2020-04-01: 1 year on 2021-03-31, the last day under 1
  and the first day from 1. Ages are counted from the day of birth for every child: the 施行令
  says 生後 N 月 and has no corrected age for premature births.
* Intervals: "N days or more apart" (N日以上の間隔) means N whole days between, so the next dose
  may be given N + 1 days after the previous one (27 days: the same weekday four weeks later);
  "N months" means from the corresponding day N months later (`months_after`). Rotavirus ages
  count the day of birth as 0 weeks 0 days (Q&A 問5), and both "from" and "until" include the day.

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
# Injected live → injected live: 27 whole days between; every other pair of different vaccines
# has no minimum interval (定期接種実施要領 as revised 2020-10-01; restated by Yoshikawa and
# Shiogama city, mch.md §6.1).
LIVE_GAP_DAYS = 27

NOT_COVERED = (
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
    of the start and of the end (the end is 'until', 「至るまで」). `source` names the text the
    rule is taken from (see the module notes for how far each is verified)."""

    label: str  # e.g. 1期初回 1回目
    label_en: str
    min_age_m: int = 0
    min_age_d: int = 0  # extra days (e.g. 6 weeks = 42 days)
    legal_until_m: int | None = None  # funded until this age (months)
    legal_until_d: int | None = None  # … or until this many days after birth, inclusive
    # (rotavirus: the day of birth is "0 weeks 0 days"; "until 24 weeks 0 days" includes it)
    std_from_m: int | None = None
    std_until_m: int | None = None
    std_until_d: int | None = None  # … or this many days after birth, inclusive (rotavirus)
    after_prev_d: int = 0  # whole days after the previous dose of the series
    after_prev_m: int = 0  # or months after it (same day of the month)
    after_dose: int | None = None  # …counted from this dose (1-based) instead of the previous
    also_after_prev_d: int = 0  # with after_dose: and this many whole days after the previous
    std_after_prev_until_m: int | None = None  # standard: within N months after previous
    std_after_prev_from_m: int | None = None
    std_after_prev_until_d: int | None = None  # standard: at most N days' interval (N日まで)
    independent: bool = False  # a stage of its own (MR 2期, JE 2期): not blocked by earlier doses
    skippable: bool = False  # not given once its window closes, later doses still are (PCV, Hib)
    school_year_before_entry: bool = False  # MR 2期: 年長 (April–March before school)
    fiscal_age_from: int | None = None  # HPV: from the fiscal year the child turns this age
    fiscal_age_until: int | None = None  # …to the end of the fiscal year they turn this age
    source: str = ""

    @property
    def stage(self) -> str:
        """The 期別 part of the label (1期初回, 1期追加, 2期, 初回, 追加), '' when none."""
        head = self.label.split()[0]
        return head if ("期" in head or head in ("初回", "追加")) else ""


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


M = Rule  # short alias for the table

# The funded age windows: 予防接種法施行令 第3条第1項の表 (verified, see the module notes).
LAW = "予防接種法施行令 第3条第1項の表"
# Intervals and standard periods: 定期接種実施要領 第2 各論 (restated; not verified in the 要領).
GUIDE = "定期接種実施要領 第2 各論"
# The 要領's section per series, as the seido-keisan transcription numbers them (not read in the
# 要領 itself; see the module notes). Its values agree with every rule below.
GUIDE_SECTION = {
    "DPT-IPV-Hib": "第2の1(1)", "DT": "第2の1(16)", "MR": "第2の2", "JE": "第2の3",
    "BCG": "第2の4", "PCV": "第2の5", "HPV": "第2の6", "VZV": "第2の7", "HepB": "第2の8",
    "Rota1": "第2の9", "Rota5": "第2の9",
}  # fmt: skip


def _guide(series: str) -> str:
    """The 要領 and the section of one series, for a rule's `source`."""
    return f"{GUIDE} {GUIDE_SECTION[series]}"


# The method of each vaccination: 予防接種実施規則 (昭和33年厚生省令第27号), article numbers as in
# its text in force from 2023-04-01 (table of contents read at legaldoc.jp) and, for 9–21, in the
# e-Gov text of 2016 (第二章 第九条―第十一条 … 第十章 B型肝炎 第二十一条); the article texts
# themselves were not retrieved, except 第9条 in its 2013 wording: 20日から56日までの間隔.
RULES = "予防接種実施規則 第"
_HEPB = f"{_guide('HepB')} / {RULES}21条: "
_ROTA = f"{_guide('Rota1')} / {RULES}22条: "
_DPT = f"{_guide('DPT-IPV-Hib')} / {RULES}9–11条: "
_PCV = f"{_guide('PCV')} / {RULES}18条: "
_VZV = f"{_guide('VZV')} / {RULES}20条: "
_JE = f"{_guide('JE')} / {RULES}14–15条: "
_HIB = f"{GUIDE} / {RULES}17条: "

# Both rotavirus products start alike: from 6 weeks 0 days; the first dose by 14 weeks 6 days
# (施行令: 生後六週に至った日の翌日から; 要領: 初回接種は出生14週6日後まで, MHLW ロタQ&A 問5–7).
ROTA_DOSE_1 = M(
    "1回目",
    "dose 1",
    min_age_d=42,
    legal_until_d=14 * 7 + 6,
    std_from_m=2,
    std_until_d=14 * 7 + 6,
    source=f"{LAW} ロタウイルス感染症; {_ROTA}ロタ 初回 標準 生後2月から出生14週6日後まで、"
    "出生15週0日後以降は勧めない (MHLW ロタQ&A 問6)",
)
_ROTA_NEXT = f"{_ROTA}ロタ: 27日以上の間隔 (restated: Mori, Kasukabe)"

# 五種混合 1期初回 doses 2 and 3.
_DPT_PRIMARY: dict[str, Any] = dict(
    min_age_m=2,
    legal_until_m=90,
    after_prev_d=20,
    std_from_m=2,
    std_after_prev_until_d=56,
    source=f"{_DPT}五種混合 1期初回: 20日以上 (標準 20日から56日) の間隔をおいて3回 (restated)",
)

SERIES: tuple[Series, ...] = (
    Series(
        "HepB",
        "B型肝炎",
        "Hepatitis B",
        frozenset({"HepB"}),
        (
            M("1回目", "dose 1", legal_until_m=12, std_from_m=2, std_until_m=9,
              source=f"{LAW} B型肝炎 (一歳に至るまで);"
              f" {_guide('HepB')} 標準 生後2月から9月に至るまで"),
            M("2回目", "dose 2", legal_until_m=12, after_prev_d=27, std_from_m=2, std_until_m=9,
              source=f"{_HEPB}B型肝炎: 27日以上の間隔をおいて2回 (restated: Muko, Hita)"),
            M("3回目", "dose 3", legal_until_m=12, after_prev_d=139, after_dose=1,
              also_after_prev_d=6, std_from_m=2, std_until_m=9,
              source=f"{_HEPB}B型肝炎: 1回目から139日以上 (restated: Muko, Hita, Kasukabe),"
              " かつ2回目から6日以上 (restated: Muko only)"),
        ),
    ),
    Series(
        "Rota1",
        "ロタウイルス（1価）",
        "Rotavirus (monovalent)",
        frozenset({"Rota1"}),
        (
            ROTA_DOSE_1,
            M("2回目", "dose 2", min_age_d=42, legal_until_d=24 * 7, after_prev_d=27,
              source=f"{LAW} ロタ (1価: 出生24週0日後まで, 施行規則); {_ROTA_NEXT}"),
        ),
    ),
    Series(
        "Rota5",
        "ロタウイルス（5価）",
        "Rotavirus (pentavalent)",
        frozenset({"Rota5"}),
        (
            ROTA_DOSE_1,
            M("2回目", "dose 2", min_age_d=42, legal_until_d=32 * 7, after_prev_d=27,
              source=f"{LAW} ロタ (生後三十二週に至る日の翌日まで); {_ROTA_NEXT}"),
            M("3回目", "dose 3", min_age_d=42, legal_until_d=32 * 7, after_prev_d=27,
              source=f"{LAW} ロタ (生後三十二週に至る日の翌日まで); {_ROTA_NEXT}"),
        ),
    ),
    Series(
        "DPT-IPV-Hib",
        "五種混合",
        "DTaP-IPV-Hib",
        frozenset({"DPT-IPV-Hib", "DPT-IPV"}),
        (
            M("1期初回 1回目", "primary dose 1", min_age_m=2, legal_until_m=90, std_from_m=2,
              std_until_m=7, source=f"{LAW} ジフテリア等 一 (生後二月から生後九十月に至るまで);"
              f" {_guide('DPT-IPV-Hib')} 標準 初回 生後2月から7月に至るまでに開始"),
            M("1期初回 2回目", "primary dose 2", **_DPT_PRIMARY),
            M("1期初回 3回目", "primary dose 3", **_DPT_PRIMARY),
            M("1期追加", "booster", min_age_m=2, legal_until_m=90, after_prev_m=6,
              std_after_prev_from_m=6, std_after_prev_until_m=18,
              source=f"{_DPT}五種混合 1期追加: 初回終了後6月以上 (標準 6月から18月) (restated)"),
        ),
    ),
    Series(
        "PCV",
        "小児用肺炎球菌",
        "Pneumococcal (PCV)",
        frozenset({"PCV20", "PCV15", "PCV13"}),
        (
            M("初回 1回目", "primary dose 1", min_age_m=2, legal_until_m=60, std_from_m=2,
              std_until_m=7, source=f"{LAW} 肺炎球菌感染症 (小児;"
              " 生後二月から生後六十月に至るまで)"),
            M("初回 2回目", "primary dose 2", min_age_m=2, legal_until_m=24, after_prev_d=27,
              std_from_m=2, std_until_m=12, skippable=True,
              source=f"{_PCV}肺炎球菌: 27日以上の間隔; 初回2回目・3回目は生後24月に至るまで、"
              "超えた場合は行わない (restated: Tamba, Chippubetsu)"),
            M("初回 3回目", "primary dose 3", min_age_m=2, legal_until_m=24, after_prev_d=27,
              std_from_m=2, std_until_m=12, skippable=True,
              source=f"{_PCV}肺炎球菌: 2回目が生後12月を超えたら3回目は行わない (restated: Tamba,"
              " Sanuki)"),
            M("追加", "booster", min_age_m=12, legal_until_m=60, after_prev_d=60, std_from_m=12,
              std_until_m=15, source=f"{_PCV}肺炎球菌 追加: 初回終了後60日以上、"
              "生後12月に至った日以降 (標準 12月から15月) (restated: Tamba, Nikko)"),
        ),
    ),
    Series(
        "BCG",
        "BCG",
        "BCG",
        frozenset({"BCG"}),
        (M("1回", "single dose", legal_until_m=12, std_from_m=5, std_until_m=8,
           source=f"{LAW} 結核 (一歳に至るまで); {_guide('BCG')} 標準 生後5月から8月に至るまで"),),
    ),
    Series(
        "MR",
        "麻しん風しん（MR）",
        "Measles-rubella (MR)",
        frozenset({"MR"}),
        (
            M("1期", "stage 1", min_age_m=12, legal_until_m=24,
              source=f"{LAW} 麻しん・風しん 一 (生後十二月から生後二十四月に至るまで)"),
            M("2期", "stage 2", min_age_m=60, school_year_before_entry=True, independent=True,
              source=f"{LAW} 麻しん・風しん 二 (五歳以上七歳未満で、小学校就学の"
              "始期に達する日の一年前の日から当該始期に達する日の前日まで)"),
        ),
    ),
    Series(
        "VZV",
        "水痘",
        "Varicella",
        frozenset({"VZV"}),
        (
            M("1回目", "dose 1", min_age_m=12, legal_until_m=36, std_from_m=12, std_until_m=15,
              source=f"{LAW} 水痘 (生後十二月から生後三十六月に至るまで);"
              f" {_guide('VZV')} 標準 12月から15月"),
            M("2回目", "dose 2", min_age_m=12, legal_until_m=36, after_prev_m=3,
              std_after_prev_from_m=6, std_after_prev_until_m=12,
              source=f"{_VZV}水痘: 3月以上 (標準 6月から12月) の間隔 (restated)"),
        ),
    ),
    Series(
        "JE",
        "日本脳炎",
        "Japanese encephalitis",
        frozenset({"JE"}),
        (
            M("1期初回 1回目", "primary dose 1", min_age_m=6, legal_until_m=90,
              source=f"{LAW} 日本脳炎 一 (生後六月から生後九十月に至るまで);"
              f" {_guide('JE')} 標準 3歳",
              std_from_m=36, std_until_m=48),
            M("1期初回 2回目", "primary dose 2", min_age_m=6, legal_until_m=90, after_prev_d=6,
              std_from_m=36, std_after_prev_until_d=28,
              source=f"{_JE}日本脳炎 1期初回: 6日以上 (標準 6日から28日) の間隔 (restated)"),
            M("1期追加", "booster", min_age_m=6, legal_until_m=90, after_prev_m=6,
              std_from_m=48, std_until_m=60,
              source=f"{_JE}日本脳炎 1期追加: 初回終了後6月以上 (標準 おおむね1年), 標準 4歳"
              " (restated)"),
            M("2期", "stage 2", min_age_m=108, legal_until_m=156, std_from_m=108,
              std_until_m=120, independent=True,
              source=f"{LAW} 日本脳炎 二 (九歳以上十三歳未満); {_guide('JE')} 標準 9歳"),
        ),
    ),
    Series(
        "DT",
        "二種混合（DT）",
        "Diphtheria-tetanus (DT)",
        frozenset({"DT"}),
        (M("2期", "stage 2", min_age_m=132, legal_until_m=156, std_from_m=132, std_until_m=144,
           source=f"{LAW} ジフテリア・破傷風 二 (十一歳以上十三歳未満);"
           f" {_guide('DT')} 標準 11歳"),),
    ),
    Series(
        "HPV",
        "ヒトパピローマウイルス（HPV）",
        "HPV",
        frozenset({"HPV"}),
        (
            M("1回目", "dose 1", fiscal_age_from=12, fiscal_age_until=16, std_from_m=156,
              std_until_m=168, source=f"{LAW} ヒトパピローマウイルス感染症 "
              "(十二歳となる日の属する年度の初日から十六歳となる日の属する"
              f"年度の末日まで、女子); {_guide('HPV')} 標準 中学1年"),
        ),
        sex="female",
    ),
)  # fmt: skip

# Legacy: a child who started 四種混合 (DPT-IPV) finishes with it and gets Hib separately.
_HIB_SOURCE = (
    f"{_HIB}Hib: 27日以上の間隔; 初回2回目・3回目は生後12月に至るまで、超えた場合は行わない"
)
HIB = Series("Hib", "ヒブ", "Hib", frozenset({"Hib"}), (
    M("初回 1回目", "primary dose 1", min_age_m=2, legal_until_m=60, std_from_m=2, std_until_m=7,
      source=f"{LAW} Hib感染症 (生後二月から生後六十月に至るまで)"),
    M("初回 2回目", "primary dose 2", min_age_m=2, legal_until_m=12, after_prev_d=27,
      std_after_prev_until_d=56, skippable=True,
      source=_HIB_SOURCE + " (標準 27日から56日; restated: Koka, Nobeoka, Aioi)"),
    M("初回 3回目", "primary dose 3", min_age_m=2, legal_until_m=12, after_prev_d=27,
      std_after_prev_until_d=56, skippable=True,
      source=_HIB_SOURCE + " (標準 27日から56日; restated: Koka, Nobeoka, Aioi)"),
    M("追加", "booster", min_age_m=2, legal_until_m=60, after_prev_m=7,
      std_after_prev_from_m=7, std_after_prev_until_m=13,
      source=f"{_HIB}Hib 追加: 初回終了後7月以上 (標準 7月から13月) (restated: Koka, Nobeoka)"),
))  # fmt: skip


@dataclass(frozen=True)
class Dose:
    """A recorded dose: the vaccine code, the day it was given and, when the record says so,
    its stage (`protocolApplied.series`, the 期別) and number within that stage."""

    code: str
    given_on: date
    number: int | None = None
    stage: str | None = None


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


_PCV_LATE = f"{_PCV}肺炎球菌 (restated: Tamba, Sanuki, Nikko, Chippubetsu)"
_HIB_LATE = f"{_HIB}Hib (restated: Aioi, Otsuchi, Higashikurume, Ikeda)"


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
        single = M("1回", "single dose", min_age_m=2, legal_until_m=60,
                   source=_HIB_LATE + ": 生後12月に至った日の翌日から生後60月 1回")  # fmt: skip
        return replace(base, doses=(single,))
    primaries = (d1, d2, d3) if start <= reach(birth, 7) else (d1, d2)
    if given and len(given) < len(primaries):
        following = max(today, given[-1] + timedelta(days=28))
        if following > reach(birth, 12):
            early = M("追加", "booster", min_age_m=2, legal_until_m=60, after_prev_d=27,
                      source=_HIB_LATE + ": 初回2回目・3回目が生後12月を超えたら行わず、"
                      "追加は初回の最後から27日以上")  # fmt: skip
            return replace(base, doses=(*primaries[: len(given)], early))
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
    late: dict[str, Any] = dict(min_age_m=12, legal_until_m=60)
    if start <= reach(birth, 24):
        return replace(base, doses=(
            M("1回目", "dose 1", **late, source=_PCV_LATE + ": 1歳から2歳 60日以上の間隔で2回"),
            M("2回目", "dose 2", after_prev_d=60, **late,
              source=_PCV_LATE + ": 1歳から2歳 60日以上の間隔で2回"),
        ))  # fmt: skip
    return replace(base, doses=(M("1回", "single dose", min_age_m=24, legal_until_m=60,
                                  source=_PCV_LATE + ": 2歳から5歳 1回"),))  # fmt: skip


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
    start = _age_day(birth, rule.min_age_m, rule.min_age_d)
    until = _legal_until(rule, birth)
    if rule.school_year_before_entry:
        entry = _school_entry(birth)
        start, until = max(start, date(entry.year - 1, 4, 1)), entry - timedelta(days=1)
    if rule.fiscal_age_from is not None:
        start = max(start, date(_fiscal_turning(birth, rule.fiscal_age_from), 4, 1))
        until = date(_fiscal_turning(birth, rule.fiscal_age_until or 16) + 1, 3, 31)
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
    std_from = _age_day(birth, rule.std_from_m) if rule.std_from_m is not None else None
    std_until = reach(birth, rule.std_until_m) if rule.std_until_m is not None else None
    if rule.std_until_d is not None:
        std_until = birth + timedelta(days=rule.std_until_d)
    if rule.school_year_before_entry:
        std_from, std_until = window_from, legal_until
    if rule.fiscal_age_from is not None:
        # HPV: standard 中1, the fiscal year the girl turns 13 (要領, restated).
        std_from = date(_fiscal_turning(birth, 13), 4, 1)
        std_until = date(_fiscal_turning(birth, 13) + 1, 3, 31)
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
