"""The rule tables of Japan's routine childhood immunizations (定期接種): each series, each
dose's funded age window, intervals and standard period, with the text it is taken from.
portal/care/schedule.py applies them to one child.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INJECTED_LIVE = {"BCG", "MR", "VZV"}
# Injected live → injected live: 27 whole days between; every other pair of different vaccines
# has no minimum interval (定期接種実施要領 as revised 2020-10-01; restated by Yoshikawa and
# Shiogama city, mch.md §6.1).
LIVE_GAP_DAYS = 27


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

# The sources of the doses schedule.py sets by the age a series starts at (its _pcv and _hib).
PCV_LATE = f"{_PCV}肺炎球菌 (restated: Tamba, Sanuki, Nikko, Chippubetsu)"
HIB_LATE = f"{_HIB}Hib (restated: Aioi, Otsuchi, Higashikurume, Ikeda)"
