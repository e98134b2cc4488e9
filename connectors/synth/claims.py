"""NHI claims of the synthetic city in the UKE format: one 医科 and one 調剤 file per 診療年月,
with record order, field positions and encoding as uke.md describes."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

from connectors.sources.uke import month_end
from connectors.synth.people import City, Person

DISEASES = [
    "8840107",
    "4659007",
    "4660003",
    "8833421",
    "2500013",
    "4011004",
    "5300003",
    "8842965",
    "4019018",
    "0000999",
]
PROCEDURES = ["111000110", "112007410", "160000310", "160008010", "160061710", "170000410"]
DRUGS = ["620000023", "610406079", "620004620", "621930001", "610409330", "620002023"]


def _yymmdd_legacy(d: date) -> str:
    """和暦 GYYMMDD (令和 from 2019-05-01, else 平成)."""
    if d >= date(2019, 5, 1):
        return f"5{d.year - 2018:02d}{d.month:02d}{d.day:02d}"
    return f"4{d.year - 1988:02d}{d.month:02d}{d.day:02d}"


def write_claims(city: City, out: Path, rnd: random.Random, months: int = 12) -> list[Path]:
    """One 医科 and one 調剤 UKE file per 診療年月, CP932, CRLF, 0x1A at the end."""
    insured = [p for p in city.people if p.insurance]
    paths = []
    for m in range(1, months + 1):
        ym = f"{city.year}{m:02d}"
        billing = f"{city.year + (m == 12)}{(m % 12) + 1:02d}"
        # facility code → its receipts, each a list of records (a record: its fields)
        med: dict[str, list[list[list[str]]]] = {}
        pha: dict[str, list[list[list[str]]]] = {}
        for p in insured:
            if p.birth > month_end(city.year, m):
                continue  # no claims before birth
            if rnd.random() < 0.45:
                fac = rnd.choice(city.facilities)
                lines = _medical_receipt(p, ym, rnd, city.year, m)
                med.setdefault(fac[0], []).append(lines)
                if rnd.random() < 0.6:
                    ph = rnd.choice(city.pharmacies)
                    pha.setdefault(ph[0], []).append(
                        _pharmacy_receipt(p, ym, rnd, fac[0], city.year, m)
                    )
        for kind, groups, names, rt in (
            ("C", med, dict(city.facilities), "IR"),
            ("Y", pha, dict(city.pharmacies), "YK"),
        ):
            path = out / f"RECEIPT{kind}_{ym}.UKE"
            with path.open("wb") as fh:
                for code10, receipts in groups.items():
                    table = "1" if rt == "IR" else "4"
                    # IR has a 予備 field (6) before the name; YK does not (docs/uke.md).
                    spare = [""] if rt == "IR" else []
                    head = [rt, "2", code10[:2], table, code10[3:], *spare]
                    recs = [[*head, names[code10], billing, "00", ""]]
                    total = 0
                    for i, lines in enumerate(receipts, start=1):
                        lines[0][1] = str(i)
                        total += int(next(x for x in lines if x[0] == "HO")[5])
                        recs.extend(lines)
                    recs.append(["GO", str(len(receipts)), str(total), "99"])
                    fh.write(b"".join((",".join(r) + "\r\n").encode("cp932") for r in recs))
                fh.write(b"\x1a")
            paths.append(path)
    return paths


def _re(p: Person, ym: str, rtype: str) -> list[str]:
    re = ["RE", "0", rtype, ym, p.name, p.sex, p.birth.strftime("%Y%m%d"), "70"] + [""] * 30
    return re


def _ho(p: Person, points: int, days: int) -> list[str]:
    ins = p.insurance or ("", "", "", "")
    return [
        "HO",
        ins[0],
        ins[1],
        ins[2],
        str(days),
        str(points),
        "",
        "",
        "",
        "",
        "",
        str(points * 3),
        "",
        "",
        "",
    ]


def _sn(p: Person) -> list[str]:
    ins = p.insurance or ("", "", "", "")
    return ["SN", "1", "01", ins[0], ins[1], ins[2], ins[3], "", ""]


def _day_cols(days: list[int]) -> list[str]:
    return ["1" if d in days else "" for d in range(1, 32)]


def _medical_receipt(
    p: Person, ym: str, rnd: random.Random, year: int, month: int
) -> list[list[str]]:
    child = (date(year, month, 1) - p.birth).days < 6 * 365
    rtype = "1114" if child else "1112"
    visit_days = sorted(rnd.sample(range(1, 29), rnd.choice((1, 1, 2, 3))))
    lines: list[list[str]] = [_re(p, ym, rtype)]
    points = 0
    body: list[list[str]] = []
    for i in range(rnd.choice((1, 1, 2, 3))):
        code = rnd.choice(DISEASES)
        start = date(year, month, visit_days[0]) - timedelta(days=rnd.choice((0, 0, 30, 400)))
        start_s = _yymmdd_legacy(start) if rnd.random() < 0.1 else start.strftime("%Y%m%d")
        body.append(
            [
                "SY",
                code,
                start_s,
                rnd.choice("1112"),
                "",
                "かぜ症候群" if code == "0000999" else "",
                "01" if i == 0 else "",
                "",
            ]
        )
    for code in rnd.sample(PROCEDURES, rnd.randint(1, 3)):
        pts = rnd.randint(50, 400)
        points += pts * len(visit_days)
        body.append(
            [
                "SI",
                "12",
                "1",
                code,
                "",
                str(pts),
                str(len(visit_days)),
                "",
                "",
                "",
                "",
                "",
                "",
                *_day_cols(visit_days),
            ]
        )
    if rnd.random() < 0.3:
        code = rnd.choice(DRUGS)
        pts = rnd.randint(5, 80)
        points += pts
        body.append(
            [
                "IY",
                "21",
                "1",
                code,
                f"{rnd.randint(1, 30)}",
                str(pts),
                "1",
                "",
                "",
                "",
                "",
                "",
                "",
                *_day_cols(visit_days[:1]),
            ]
        )
    if rnd.random() < 0.1:
        body.append(["CO", "12", "1", "820100001", "コメント"])
    if child:
        lines.append(_ho(p, points, len(visit_days)))
        lines.append(
            ["KO", "81070285", "", "", str(len(visit_days)), str(points), "0", "", "", "", "", ""]
        )
    else:
        lines.append(_ho(p, points, len(visit_days)))
    lines.append(_sn(p))
    lines.extend(body)
    return lines


def _pharmacy_receipt(
    p: Person, ym: str, rnd: random.Random, prescriber: str, year: int, month: int
) -> list[list[str]]:
    day = date(year, month, rnd.randint(1, 28))
    rtype = "4112" if (day - p.birth).days >= 6 * 365 else "4114"
    # 調剤 RE: 1–8 as 医科, 9 特記事項, 10–12 the prescribing facility, 13 its name, 14 its
    # address, 15–34 保険医氏名, …, 42 カタカナ氏名 (docs/uke.md)
    re = ["RE", "0", rtype, ym, p.name, p.sex, p.birth.strftime("%Y%m%d"), "70", ""]
    re += [prescriber[:2], prescriber[2], prescriber[3:]] + [""] * 30
    lines: list[list[str]] = [re]
    lines.append(_ho(p, 0, 1))
    lines.append(_sn(p))
    issued = day.strftime("%Y%m%d")
    points = 0
    for no in range(1, rnd.choice((1, 1, 2)) + 1):
        days = rnd.choice((3, 5, 7, 14, 28))
        # SH 処方No, 剤形 (1 内服), 用法, 特別指示, 単位薬剤料
        unit = rnd.randint(1, 30)
        lines.append(["SH", f"{no:02d}", "1", "", "", str(unit)])
        drug_points = unit * days
        points += drug_points + 24
        # CZ 医師No, 交付年月日, 調剤年月日, 受付回, 調剤数量, 負担区分, 算定区分, 算定先No,
        # 薬剤調製料コード, 点数, 分割区分, 前回数量, 薬剤料点数, 予備; then 加算料①–⑩ … 薬剤料減算
        # left empty: 71 fields in all (uke.FIELD_COUNTS, docs/uke.md)
        cz = ["CZ", "1", issued, issued, "1", str(days), "1", "1", "01", "420000110", "24"]
        lines.append([*cz, "", "", str(drug_points), ""] + [""] * 56)
        for code in rnd.sample(DRUGS, rnd.randint(1, 2)):
            lines.append(["IY", "1", code, f"{rnd.randint(1, 3)}", "", "", "", "", "", ""])
    lines[1][5] = str(points)
    lines[1][9], lines[1][11] = str(points * 3), ""  # 調剤 HO: 10 一部負担金 (医科: 12)
    return lines
