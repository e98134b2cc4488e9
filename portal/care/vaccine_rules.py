"""The rule tables of Japan's routine childhood immunizations (定期接種): each series, each
dose's funded age window, intervals and standard period, with the text it is taken from.
portal/care/schedule.py applies them to one child.

Sources, per rule (the `source` of each `Rule`; portal/care/README.md lists them all), and how
far each part of a rule is checked against a primary text (its `checked`: "confirmed (text,
section)" where the primary text was read, "restated (why)" where it was not):
* Who is eligible (the funded age windows): 予防接種法施行令 第3条第1項の表 (旧第1条の3, as in
  force from 2024-04-01 after 令和6年政令第116号), read again on 2026-12-08 in its republished
  text at sn-hoki.co.jp (the whole table) and iuris.jp: every window below is the table's
  wording. Confirmed.
* How (intervals, number of doses by starting age, standard periods): the MHLW 定期接種実施要領
  (別添「定期接種実施要領」第2 各論) and 予防接種実施規則. Neither text could be reached here
  (searched again on 2026-12-08 in the page, documentation, code and issue corpora and with
  find_string; the queries are listed in portal/care/README.md): the pages corpus gives only the
  opening of a page (the e-Gov and jplaws.app texts of the 規則 stop in 第3条; the 2016 官報 and
  改正通知 stop before the B型肝炎 article), and no repository holds either text. Every interval
  below is taken from at least two municipal pages that restate them, named in the rule's
  `source` ("restated"). A third-party transcription of the 要領 (令和8年10月1日改正,
  YouheiOonuki/seido-keisan@38f33cd5 lib/yobosesshu-values.js, "read 2026-10-03") gives the same
  intervals and standard periods and the section of each vaccine (`GUIDE_SECTION`); it is a
  restatement too. The 規則's chapter and article numbers are confirmed in its e-Gov text
  (最終改正 平成28年厚生労働省令第115号; law.e-gov.go.jp/htmldata/S33/S33F03601000027.html) and
  the 2023 table of contents; the article texts are not, except 第9条 in its 2013 wording
  (二十日から五十六日までの間隔をおいて三回, roppou.mark-point.jp), older than 五種混合. All of this
  is documented as not verified against the 要領, in this code and in the README, never shown to
  parents.
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
    rule is taken from; `checked` says, part by part, whether that part was confirmed in a
    primary text or is only restated, and why (see the module notes)."""

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
    checked: tuple[str, ...] = ()  # per part of the rule: "confirmed (…)" or "restated (…)"

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


def confirmed(what: str, where: str) -> str:
    """A part of a rule read in a primary text: what it is, and the text and section."""
    return f"{what}: confirmed ({where})"


def restated(what: str, why: str) -> str:
    """A part of a rule no primary text reached here confirms: what it is, and why not."""
    return f"{what}: restated ({why})"


def _window(row: str) -> str:
    """The funded window, as the 令's table words it for the disease (`row`)."""
    return confirmed("funded window", f"{LAW} {row}")


def _not_reached(series: str, by: str) -> str:
    """Why a value of the 要領 stays restated: the 要領 was not reached; who restates it."""
    if series in GUIDE_SECTION:
        return f"要領 {GUIDE_SECTION[series]} not reached here; {by} and seido-keisan agree"
    return f"要領 not reached here; {by} agree (seido-keisan does not cover it)"


_QA = "MHLW ロタウイルスワクチンに関するQ&A 問6, republished at kansensho.jp"
_ROTA_WINDOW = _window(
    "ロタウイルス感染症 (生後六週に至った日の翌日から、生後三十二週に至る日の翌日まで)"
)
_HEPB_WINDOW = _window("B型肝炎 (一歳に至るまでの間にある者)")
_DPT_WINDOW = _window(
    "ジフテリア・百日せき・急性灰白髄炎・破傷風 一 (生後二月から生後九十月に至るまで)"
)
_PCV_WINDOW = _window("肺炎球菌感染症（小児） (生後二月から生後六十月に至るまで)")
_HIB_WINDOW = _window("Hib感染症 (生後二月から生後六十月に至るまで)")
_VZV_WINDOW = _window("水痘 (生後十二月から生後三十六月に至るまで)")
_JE1_WINDOW = _window("日本脳炎 一 (生後六月から生後九十月に至るまで)")

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
    checked=(
        _ROTA_WINDOW,
        confirmed("standard 生後2月 to 出生14週6日後", _QA),
        restated(
            "no first dose from 出生15週0日後",
            "Q&A 問6 only says a first dose then is not recommended (お勧めしていません) "
            "and the 令 runs to 32 weeks (施行規則: 1価 24); Mori and Chippubetsu restate "
            "it as a limit, seido-keisan as 望ましい; the 要領 is not reached here. Kept: "
            "the cautious reading",
        ),
    ),
)
_ROTA_NEXT = f"{_ROTA}ロタ: 27日以上の間隔 (restated: Mori, Kasukabe)"
_ROTA_GAP = restated("27日以上", _not_reached("Rota1", "Mori, Kasukabe") + "; 規則22条 not reached")

# 五種混合 1期初回 doses 2 and 3.
_DPT_PRIMARY: dict[str, Any] = dict(
    min_age_m=2,
    legal_until_m=90,
    after_prev_d=20,
    std_from_m=2,
    std_after_prev_until_d=56,
    source=f"{_DPT}五種混合 1期初回: 20日以上 (標準 20日から56日) の間隔をおいて3回 (restated)",
    checked=(
        _DPT_WINDOW,
        restated(
            "20日以上, standard 20–56日",
            _not_reached("DPT-IPV-Hib", "Koka, Nobeoka")
            + "; 規則第9条 read only in its 2013 wording (二十日から五十六日までの間隔), "
            "before 五種混合",
        ),
    ),
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
              f" {_guide('HepB')} 標準 生後2月から9月に至るまで",
              checked=(_HEPB_WINDOW,
                       restated("standard 2–9 months", _not_reached("HepB", "Hita, Muko")))),
            M("2回目", "dose 2", legal_until_m=12, after_prev_d=27, std_from_m=2, std_until_m=9,
              source=f"{_HEPB}B型肝炎: 27日以上の間隔をおいて2回 (restated: Muko, Hita)",
              checked=(_HEPB_WINDOW, restated("27日以上", _not_reached("HepB", "Muko, Hita")
                                               + "; 規則21条 not reached"))),
            M("3回目", "dose 3", legal_until_m=12, after_prev_d=139, after_dose=1,
              also_after_prev_d=6, std_from_m=2, std_until_m=9,
              source=f"{_HEPB}B型肝炎: 1回目から139日以上 (restated: Muko, Hita, Kasukabe),"
              " かつ2回目から6日以上 (restated: Muko only)",
              checked=(_HEPB_WINDOW,
                       restated("139日以上 after dose 1",
                                _not_reached("HepB", "Muko, Hita, Kasukabe")
                                + "; 規則21条 not reached"),
                       restated("6日以上 after dose 2",
                                "Muko only; kept as the cautious reading"))),
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
              source=f"{LAW} ロタ (1価: 出生24週0日後まで, 施行規則); {_ROTA_NEXT}",
              checked=(_ROTA_WINDOW,
                       restated("1価 until 出生24週0日後",
                                "the 令 leaves the limit per product to a 厚生労働省令 "
                                "(施行規則), not reached here; Mori, Chippubetsu and "
                                "seido-keisan (施行規則 2条の3) agree"),
                       _ROTA_GAP)),
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
              source=f"{LAW} ロタ (生後三十二週に至る日の翌日まで); {_ROTA_NEXT}",
              checked=(_ROTA_WINDOW, _ROTA_GAP)),
            M("3回目", "dose 3", min_age_d=42, legal_until_d=32 * 7, after_prev_d=27,
              source=f"{LAW} ロタ (生後三十二週に至る日の翌日まで); {_ROTA_NEXT}",
              checked=(_ROTA_WINDOW, _ROTA_GAP)),
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
              f" {_guide('DPT-IPV-Hib')} 標準 初回 生後2月から7月に至るまでに開始",
              checked=(_DPT_WINDOW, restated("standard start 2–7 months",
                                             _not_reached("DPT-IPV-Hib", "Koka, Nobeoka")))),
            M("1期初回 2回目", "primary dose 2", **_DPT_PRIMARY),
            M("1期初回 3回目", "primary dose 3", **_DPT_PRIMARY),
            M("1期追加", "booster", min_age_m=2, legal_until_m=90, after_prev_m=6,
              std_after_prev_from_m=6, std_after_prev_until_m=18,
              source=f"{_DPT}五種混合 1期追加: 初回終了後6月以上 (標準 6月から18月) (restated)",
              checked=(_DPT_WINDOW, restated("6 months after 初回, standard 6–18",
                                             _not_reached("DPT-IPV-Hib", "Koka, Nobeoka")
                                             + "; 規則10条 not reached"))),
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
              " 生後二月から生後六十月に至るまで)",
              checked=(_PCV_WINDOW, restated("standard start 2–7 months",
                                             _not_reached("PCV", "Tamba, Mie-Kihoku")))),
            M("初回 2回目", "primary dose 2", min_age_m=2, legal_until_m=24, after_prev_d=27,
              std_from_m=2, std_until_m=12, skippable=True,
              source=f"{_PCV}肺炎球菌: 27日以上の間隔; 初回2回目・3回目は生後24月に至るまで、"
              "超えた場合は行わない (restated: Tamba, Chippubetsu)",
              checked=(restated("初回 by 生後24月, not given after",
                                _not_reached("PCV", "Tamba, Chippubetsu, Kasukabe")),
                       restated("27日以上", _not_reached("PCV", "Tamba, Nikko")))),
            M("初回 3回目", "primary dose 3", min_age_m=2, legal_until_m=24, after_prev_d=27,
              std_from_m=2, std_until_m=12, skippable=True,
              source=f"{_PCV}肺炎球菌: 2回目が生後12月を超えたら3回目は行わない (restated: Tamba,"
              " Sanuki)",
              checked=(restated("初回 by 生後24月; none after a 2回目 past 生後12月",
                                _not_reached("PCV", "Tamba, Sanuki")),
                       restated("27日以上", _not_reached("PCV", "Tamba, Nikko")))),
            M("追加", "booster", min_age_m=12, legal_until_m=60, after_prev_d=60, std_from_m=12,
              std_until_m=15, source=f"{_PCV}肺炎球菌 追加: 初回終了後60日以上、"
              "生後12月に至った日以降 (標準 12月から15月) (restated: Tamba, Nikko)",
              checked=(_PCV_WINDOW,
                       restated("60日以上 after 初回, from 生後12月, standard 12–15 months",
                                _not_reached("PCV", "Tamba, Nikko")))),
        ),
    ),
    Series(
        "BCG",
        "BCG",
        "BCG",
        frozenset({"BCG"}),
        (M("1回", "single dose", legal_until_m=12, std_from_m=5, std_until_m=8,
           source=f"{LAW} 結核 (一歳に至るまで); {_guide('BCG')} 標準 生後5月から8月に至るまで",
           checked=(_window("結核 (一歳に至るまでの間にある者)"),
                    restated("standard 5–8 months", _not_reached(
                        "BCG", "two municipal lists (expydoc.com 7637924, 7691370)")))),),
    ),
    Series(
        "MR",
        "麻しん風しん（MR）",
        "Measles-rubella (MR)",
        frozenset({"MR"}),
        (
            M("1期", "stage 1", min_age_m=12, legal_until_m=24,
              source=f"{LAW} 麻しん・風しん 一 (生後十二月から生後二十四月に至るまで)",
              checked=(_window("麻しん・風しん 一 (生後十二月から生後二十四月に至るまで)"),)),
            M("2期", "stage 2", min_age_m=60, school_year_before_entry=True, independent=True,
              source=f"{LAW} 麻しん・風しん 二 (五歳以上七歳未満で、小学校就学の"
              "始期に達する日の一年前の日から当該始期に達する日の前日まで)",
              checked=(_window("麻しん・風しん 二 (五歳以上七歳未満の者であって、小学校就学の"
                               "始期に達する日の一年前の日から当該始期に達する日の前日まで)"),)),
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
              f" {_guide('VZV')} 標準 12月から15月",
              checked=(_VZV_WINDOW, restated("standard 12–15 months",
                                             _not_reached("VZV", "Manno, Shinkamigoto")))),
            M("2回目", "dose 2", min_age_m=12, legal_until_m=36, after_prev_m=3,
              std_after_prev_from_m=6, std_after_prev_until_m=12,
              source=f"{_VZV}水痘: 3月以上 (標準 6月から12月) の間隔 (restated)",
              checked=(_VZV_WINDOW, restated("3 months after dose 1, standard 6–12",
                                             _not_reached("VZV", "Manno, Shinkamigoto")
                                             + "; 規則20条 not reached"))),
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
              std_from_m=36, std_until_m=48,
              checked=(_JE1_WINDOW, restated("standard 3 years",
                                             _not_reached("JE", "T-Sakura, Asuka")))),
            M("1期初回 2回目", "primary dose 2", min_age_m=6, legal_until_m=90, after_prev_d=6,
              std_from_m=36, std_after_prev_until_d=28,
              source=f"{_JE}日本脳炎 1期初回: 6日以上 (標準 6日から28日) の間隔 (restated)",
              checked=(_JE1_WINDOW, restated("6日以上, standard 6–28日",
                                             _not_reached("JE", "T-Sakura, Asuka")
                                             + "; 規則14条 not reached"))),
            M("1期追加", "booster", min_age_m=6, legal_until_m=90, after_prev_m=6,
              std_from_m=48, std_until_m=60,
              source=f"{_JE}日本脳炎 1期追加: 初回終了後6月以上 (標準 おおむね1年), 標準 4歳"
              " (restated)",
              checked=(_JE1_WINDOW, restated("6 months after 初回, standard 4 years",
                                             _not_reached("JE", "T-Sakura, Asuka")
                                             + "; 規則14条 not reached"))),
            M("2期", "stage 2", min_age_m=108, legal_until_m=156, std_from_m=108,
              std_until_m=120, independent=True,
              source=f"{LAW} 日本脳炎 二 (九歳以上十三歳未満); {_guide('JE')} 標準 9歳",
              checked=(_window("日本脳炎 二 (九歳以上十三歳未満の者)"),
                       restated("standard 9 years", _not_reached("JE", "T-Sakura")))),
        ),
    ),
    Series(
        "DT",
        "二種混合（DT）",
        "Diphtheria-tetanus (DT)",
        frozenset({"DT"}),
        (M("2期", "stage 2", min_age_m=132, legal_until_m=156, std_from_m=132, std_until_m=144,
           source=f"{LAW} ジフテリア・破傷風 二 (十一歳以上十三歳未満);"
           f" {_guide('DT')} 標準 11歳",
           checked=(_window("ジフテリア・破傷風 二 (十一歳以上十三歳未満の者)"),
                    restated("standard 11 years", _not_reached(
                        "DT", "a municipal list (expydoc.com 7637924), kochi-med.or.jp")))),),
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
              f"年度の末日まで、女子); {_guide('HPV')} 標準 中学1年",
              checked=(_window("ヒトパピローマウイルス感染症 (十二歳となる日の属する年度の初日から"
                               "十六歳となる日の属する年度の末日までの間にある女子)"),
                       restated("standard 中学1年",
                                "要領 第2の6 not reached here; only seido-keisan restates it"))),
        ),
        sex="female",
    ),
)  # fmt: skip

# Legacy: a child who started 四種混合 (DPT-IPV) finishes with it and gets Hib separately.
_HIB_SOURCE = (
    f"{_HIB}Hib: 27日以上の間隔; 初回2回目・3回目は生後12月に至るまで、超えた場合は行わない"
)
_HIB_GAP = restated("27日以上, standard 27–56日", _not_reached("Hib", "Koka, Nobeoka, Aioi")
                    + "; 規則17条 not reached")  # fmt: skip
_HIB_12 = restated("初回 by 生後12月, not given after", _not_reached("Hib", "Aioi, Otsuchi"))
HIB = Series("Hib", "ヒブ", "Hib", frozenset({"Hib"}), (
    M("初回 1回目", "primary dose 1", min_age_m=2, legal_until_m=60, std_from_m=2, std_until_m=7,
      source=f"{LAW} Hib感染症 (生後二月から生後六十月に至るまで)",
      checked=(_HIB_WINDOW, restated("standard start 2–7 months",
                                     _not_reached("Hib", "Koka, Nobeoka")))),
    M("初回 2回目", "primary dose 2", min_age_m=2, legal_until_m=12, after_prev_d=27,
      std_after_prev_until_d=56, skippable=True,
      source=_HIB_SOURCE + " (標準 27日から56日; restated: Koka, Nobeoka, Aioi)",
      checked=(_HIB_12, _HIB_GAP)),
    M("初回 3回目", "primary dose 3", min_age_m=2, legal_until_m=12, after_prev_d=27,
      std_after_prev_until_d=56, skippable=True,
      source=_HIB_SOURCE + " (標準 27日から56日; restated: Koka, Nobeoka, Aioi)",
      checked=(_HIB_12, _HIB_GAP)),
    M("追加", "booster", min_age_m=2, legal_until_m=60, after_prev_m=7,
      std_after_prev_from_m=7, std_after_prev_until_m=13,
      source=f"{_HIB}Hib 追加: 初回終了後7月以上 (標準 7月から13月) (restated: Koka, Nobeoka)",
      checked=(_HIB_WINDOW, restated("7 months after 初回, standard 7–13",
                                     _not_reached("Hib", "Koka, Nobeoka")))),
))  # fmt: skip

# The doses schedule.py sets by the age a series starts at (its _pcv and _hib), with sources.
PCV_LATE = f"{_PCV}肺炎球菌 (restated: Tamba, Sanuki, Nikko, Chippubetsu)"
HIB_LATE = f"{_HIB}Hib (restated: Aioi, Otsuchi, Higashikurume, Ikeda)"
_PCV_BY_AGE = restated(
    "doses by starting age", _not_reached("PCV", "Tamba, Sanuki, Nikko, Chippubetsu")
)
_HIB_BY_AGE = restated(
    "doses by starting age", _not_reached("Hib", "Aioi, Otsuchi, Higashikurume, Ikeda")
)
_PCV_LATE: dict[str, Any] = dict(min_age_m=12, legal_until_m=60, checked=(_PCV_WINDOW, _PCV_BY_AGE))
# Started at 1–2 years: two doses 60 days apart.
PCV_FROM_1_YEAR = (
    M("1回目", "dose 1", **_PCV_LATE, source=PCV_LATE + ": 1歳から2歳 60日以上の間隔で2回"),
    M("2回目", "dose 2", after_prev_d=60, **_PCV_LATE,
      source=PCV_LATE + ": 1歳から2歳 60日以上の間隔で2回"),
)  # fmt: skip
# Started at 2–5 years: one dose.
PCV_FROM_2_YEARS = M("1回", "single dose", min_age_m=24, legal_until_m=60,
                     source=PCV_LATE + ": 2歳から5歳 1回",
                     checked=(_PCV_WINDOW, _PCV_BY_AGE))  # fmt: skip
# Started after 12 months: one dose.
HIB_FROM_1_YEAR = M("1回", "single dose", min_age_m=2, legal_until_m=60,
                    source=HIB_LATE + ": 生後12月に至った日の翌日から生後60月 1回",
                    checked=(_HIB_WINDOW, _HIB_BY_AGE))  # fmt: skip
# 初回 not finished by 12 months: the booster 27 days or more after the last 初回 given.
HIB_BOOSTER_AFTER_LAPSED = M("追加", "booster", min_age_m=2, legal_until_m=60, after_prev_d=27,
                             source=HIB_LATE + ": 初回2回目・3回目が生後12月を超えたら行わず、"
                             "追加は初回の最後から27日以上",
                             checked=(_HIB_WINDOW, _HIB_BY_AGE))  # fmt: skip

# Every rule of the tables, for the checks of their sources (tests/portal/test_schedule_rules.py).
ALL_RULES: tuple[Rule, ...] = (
    *(r for s in (*SERIES, HIB) for r in s.doses),
    *PCV_FROM_1_YEAR, PCV_FROM_2_YEARS, HIB_FROM_1_YEAR, HIB_BOOSTER_AFTER_LAPSED,
)  # fmt: skip
