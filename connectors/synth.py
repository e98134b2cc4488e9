"""Deterministic synthetic exports for a city of N residents (`phr connector synth`):
resident register, maternal and child health records, vaccination register, NHI claims in UKE
(医科 and 調剤, one file per month), and a consent file of the codes that consented.

Everything is made up from a seeded generator: the same N, seed and key give the same bytes.
Shapes follow mch.md (checkups, the routine immunization schedule) and uke.md (record order,
field positions, CP932 with CRLF and a final 0x1A)."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from connectors.pseudonym import Pseudonymizer
from connectors.register import HEADERS as REGISTER_HEADERS
from connectors.sources.mch_csv import HEADERS as MCH_HEADERS
from connectors.sources.uke import month_end
from connectors.sources.vaccination_csv import HEADERS as VACC_HEADERS

SURNAMES = [
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
]
GIVEN_F = [
    "陽葵",
    "凛",
    "結菜",
    "咲良",
    "美桜",
    "花子",
    "優子",
    "直美",
    "恵",
    "由美",
    "真由美",
    "愛",
    "彩",
    "葵",
    "結衣",
]
GIVEN_M = [
    "蓮",
    "陽翔",
    "湊",
    "大翔",
    "悠真",
    "太郎",
    "健一",
    "誠",
    "大輔",
    "翔太",
    "拓也",
    "浩",
    "隆",
    "直樹",
    "一郎",
]
TOWNS = ["本町", "栄町", "旭町", "中央", "城東", "城西", "緑町", "桜町", "若松", "東山"]

# (vaccine, series, dose, age in days when given on the standard schedule)
SCHEDULE = [
    ("HepB", "-", 1, 61),
    ("HepB", "-", 2, 89),
    ("HepB", "-", 3, 215),
    ("Rota5", "-", 1, 61),
    ("Rota5", "-", 2, 89),
    ("Rota5", "-", 3, 117),
    ("DPT-IPV-Hib", "1期初回", 1, 61),
    ("DPT-IPV-Hib", "1期初回", 2, 89),
    ("DPT-IPV-Hib", "1期初回", 3, 117),
    ("DPT-IPV-Hib", "1期追加", 4, 420),
    ("PCV20", "初回", 1, 61),
    ("PCV20", "初回", 2, 89),
    ("PCV20", "初回", 3, 117),
    ("PCV20", "追加", 4, 380),
    ("BCG", "-", 1, 160),
    ("MR", "1期", 1, 370),
    ("MR", "2期", 1, 2200),
    ("VZV", "-", 1, 380),
    ("VZV", "-", 2, 560),
    ("JE", "1期初回", 1, 1100),
    ("JE", "1期初回", 2, 1125),
    ("JE", "1期追加", 3, 1480),
    ("JE", "2期", 1, 3400),
    ("DT", "2期", 1, 4100),
]
MANUFACTURERS = {
    "HepB": "MSD",
    "Rota5": "MSD",
    "DPT-IPV-Hib": "BIKEN",
    "PCV20": "ファイザー",
    "BCG": "日本BCG製造",
    "MR": "武田薬品工業",
    "VZV": "BIKEN",
    "JE": "KMバイオロジクス",
    "DT": "デンカ",
}
# (key, age in days, name in the export)
INFANT_CHECKUPS = [
    ("1か月", 32),
    ("3-4か月", 105),
    ("6-7か月", 200),
    ("9-10か月", 290),
    ("1歳6か月", 550),
    ("3歳", 1110),
]
# Reference medians (roughly) for weight kg, height cm, head cm, chest cm by age in days.
GROWTH = {
    32: (4.5, 54.0, 37.0, 36.5),
    105: (6.6, 62.0, 40.5, 41.0),
    200: (8.0, 68.0, 43.0, 43.5),
    290: (8.8, 71.5, 44.5, 45.0),
    550: (10.5, 80.5, 46.5, 48.0),
    1110: (14.0, 94.5, 49.0, 51.0),
}
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


@dataclass
class Person:
    number: str
    name: str
    birth: date
    sex: str
    address: str
    insurance: tuple[str, str, str, str] | None = None
    mother: str | None = None
    children: list[str] = field(default_factory=list)


@dataclass
class City:
    people: list[Person]
    year: int
    facilities: list[tuple[str, str]]
    pharmacies: list[tuple[str, str]]


def make_city(n: int, seed: int = 1, year: int = 2025) -> City:
    rnd = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    people: list[Person] = []
    num = 1_000_000_000
    pref = "07"
    facilities = [
        (f"{rnd.randrange(1000000, 9999999)}", f"{rnd.choice(TOWNS)}クリニック{i}")
        for i in range(max(3, n // 2000))
    ]
    pharmacies = [
        (f"{rnd.randrange(1000000, 9999999)}", f"{rnd.choice(TOWNS)}薬局{i}")
        for i in range(max(2, n // 4000))
    ]
    nhi_no = "070284"  # 国保 insurer number of the city (6 digits)
    while len(people) < n:
        # A household: adults, sometimes a mother with young children.
        surname = rnd.choice(SURNAMES)
        town = rnd.choice(TOWNS)
        block = f"{rnd.randint(1, 9)}丁目{rnd.randint(1, 30)}番{rnd.randint(1, 20)}号"
        addr = f"福島県会津若松市{town}{block}"
        nhi = rnd.random() < 0.24
        symbol = f"{rnd.randint(1, 99):02d}"
        card = f"{rnd.randint(100000, 999999)}"
        branch = 0

        def add(name: str, birth: date, sex: str) -> Person:
            nonlocal num, branch
            num += rnd.randint(1, 9)
            branch += 1
            p = Person(
                str(num),
                f"{surname} {name}",  # noqa: B023 (called within the iteration)
                birth,
                sex,
                addr,  # noqa: B023
                (nhi_no, symbol, card, f"{branch:02d}") if nhi else None,  # noqa: B023
            )
            people.append(p)
            return p

        if rnd.random() < 0.22:
            mother = add(
                rnd.choice(GIVEN_F),
                date(year - rnd.randint(22, 42), rnd.randint(1, 12), rnd.randint(1, 28)),
                "2",
            )
            if rnd.random() < 0.8:
                add(
                    rnd.choice(GIVEN_M),
                    mother.birth - timedelta(days=rnd.randint(-1500, 2000)),
                    "1",
                )
            for _ in range(rnd.choice((1, 1, 2, 2, 3))):
                birth = date(year, 1, 1) - timedelta(days=rnd.randint(-364, 13 * 365))
                sex = rnd.choice("12")
                child = add(rnd.choice(GIVEN_M if sex == "1" else GIVEN_F), birth, sex)
                child.mother = mother.number
                mother.children.append(child.number)
        else:
            for _ in range(rnd.choice((1, 1, 2, 2, 3))):
                sex = rnd.choice("12")
                add(
                    rnd.choice(GIVEN_M if sex == "1" else GIVEN_F),
                    date(year - rnd.randint(18, 90), rnd.randint(1, 12), rnd.randint(1, 28)),
                    sex,
                )
    kept = people[:n]  # the last household may be cut: its mother keeps only kept children
    numbers = {p.number for p in kept}
    for p in kept:
        p.children = [c for c in p.children if c in numbers]
    return City(
        kept,
        year,
        [(pref + "1" + c, nm) for c, nm in facilities],
        [(pref + "4" + c, nm) for c, nm in pharmacies],
    )


def _in_year(d: date, year: int) -> bool:
    return d.year == year


def write_register(city: City, out: Path) -> Path:
    path = out / "register.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REGISTER_HEADERS)
        for p in city.people:
            ins = p.insurance or ("", "", "", "")
            w.writerow([p.number, p.name, "", p.birth.isoformat(), p.sex, p.address, *ins])
    return path


def write_mch(city: City, out: Path, rnd: random.Random) -> Path:
    """Shift_JIS (CP932), as many health-management systems export."""
    path = out / "mch.csv"
    by_no = {p.number: p for p in city.people}
    rows = 0
    with path.open("w", encoding="cp932", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(MCH_HEADERS)

        def row(**kv: object) -> None:
            nonlocal rows
            rows += 1
            w.writerow([kv.get(h, "") for h in MCH_HEADERS])

        for p in city.people:
            if not p.mother:
                continue
            mother = by_no[p.mother]
            fac = rnd.choice(city.facilities)[0]
            rid = f"M{len(p.children) + rows:07d}{rnd.randrange(1000):03d}"
            conception = p.birth - timedelta(days=rnd.randint(266, 287))
            if _in_year(p.birth, city.year) or _in_year(conception + timedelta(days=60), city.year):
                reg = conception + timedelta(days=rnd.randint(45, 75))
                if _in_year(reg, city.year):
                    row(
                        記録番号=f"{rid}-R",
                        記録種別="妊娠届出",
                        住民番号=mother.number,
                        実施日=reg.isoformat(),
                        医療機関コード=fac,
                        出産予定日=(conception + timedelta(days=280)).isoformat(),
                    )
                base_w = rnd.uniform(45, 62)
                for k, wk in enumerate(
                    list(range(8, 24, 4)) + list(range(24, 36, 2)) + list(range(36, 40))
                ):
                    d = conception + timedelta(days=wk * 7 + rnd.randint(0, 6))
                    if d >= p.birth or not _in_year(d, city.year):
                        continue
                    row(
                        記録番号=f"{rid}-P{k:02d}",
                        記録種別="妊婦健診",
                        住民番号=mother.number,
                        実施日=d.isoformat(),
                        医療機関コード=fac,
                        妊娠週数=wk,
                        妊娠日数=rnd.randint(0, 6),
                        体重=f"{base_w + wk * 0.3:.1f}",
                        子宮底長=f"{max(0, wk - 4 + rnd.uniform(-2, 2)):.1f}" if wk >= 16 else "",
                        腹囲=f"{70 + wk * 0.8:.1f}" if wk >= 16 else "",
                        収縮期血圧=rnd.randint(98, 138),
                        拡張期血圧=rnd.randint(55, 88),
                        尿蛋白=rnd.choice(["-"] * 9 + ["±"]),
                        尿糖=rnd.choice(["-"] * 12 + ["+"]),
                        浮腫=rnd.choice(["-"] * 6 + ["+"]),
                    )
            if _in_year(p.birth, city.year):
                row(
                    記録番号=f"{rid}-B",
                    記録種別="出産",
                    住民番号=p.number,
                    母住民番号=mother.number,
                    実施日=p.birth.isoformat(),
                    医療機関コード=fac,
                    妊娠週数=rnd.randint(37, 41),
                    妊娠日数=rnd.randint(0, 6),
                    出生体重=rnd.randint(2500, 3900),
                    身長=f"{rnd.uniform(46, 53):.1f}",
                    頭囲=f"{rnd.uniform(31, 35):.1f}",
                    胸囲=f"{rnd.uniform(30, 34):.1f}",
                    アプガー1分=rnd.randint(7, 10),
                    アプガー5分=rnd.randint(8, 10),
                    分娩方法=rnd.choice(["経膣分娩"] * 4 + ["帝王切開"]),
                    性別="男" if p.sex == "1" else "女",
                )
            for label, age in INFANT_CHECKUPS:
                d = p.birth + timedelta(days=age + rnd.randint(0, 20))
                if not _in_year(d, city.year):
                    continue
                wt, ht, hd, ch = GROWTH[age]
                f = rnd.gauss(1.0, 0.06)
                row(
                    記録番号=f"{rid}-C{age}",
                    記録種別="乳幼児健診",
                    住民番号=p.number,
                    母住民番号=mother.number,
                    実施日=d.isoformat(),
                    医療機関コード=fac,
                    健診区分=label,
                    体重=f"{wt * f:.2f}",
                    身長=f"{ht * (0.5 + f / 2):.1f}",
                    頭囲=f"{hd * (0.6 + f * 0.4):.1f}",
                    胸囲=f"{ch * (0.6 + f * 0.4):.1f}",
                    判定=rnd.choice(["健康"] * 8 + ["要観察", "要精査"]),
                )
    return path


def write_vaccinations(city: City, out: Path, rnd: random.Random) -> Path:
    path = out / "vaccination.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(VACC_HEADERS)
        n = 0
        for p in city.people:
            if (date(city.year, 1, 1) - p.birth).days > 14 * 365:
                continue
            for vaccine, series, dose, age in SCHEDULE:
                d = p.birth + timedelta(days=age + rnd.randint(0, 25))
                if not _in_year(d, city.year) or rnd.random() < 0.04:
                    continue
                n += 1
                w.writerow(
                    [
                        f"V{n:08d}",
                        p.number,
                        d.isoformat(),
                        vaccine,
                        series,
                        dose,
                        f"{vaccine[:2].upper()}{rnd.randint(100, 999)}",
                        MANUFACTURERS[vaccine],
                        rnd.choice(city.facilities)[0],
                    ]
                )
    return path


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
        # 薬剤調製料コード, 点数, 分割区分, 前回数量, 薬剤料点数
        cz = ["CZ", "1", issued, issued, "1", str(days), "1", "1", "01", "420000110", "24"]
        lines.append([*cz, "", "", str(drug_points), ""])
        for code in rnd.sample(DRUGS, rnd.randint(1, 2)):
            lines.append(["IY", "1", code, f"{rnd.randint(1, 3)}", "", "", "", "", "", ""])
    lines[1][5] = str(points)
    lines[1][9], lines[1][11] = str(points * 3), ""  # 調剤 HO: 10 一部負担金 (医科: 12)
    return lines


def write_consents(
    city: City, out: Path, pseudo: Pseudonymizer, rnd: random.Random, share: float
) -> Path:
    """About `share` of households consent (a mother's consent covers her children)."""
    codes: set[str] = set()
    by_no = {p.number: p for p in city.people}
    for p in city.people:
        if p.mother:
            continue
        if rnd.random() < share:
            codes.add(pseudo.code(p.number))
            for c in p.children:
                codes.add(pseudo.code(by_no[c].number))
    data = {"mch": sorted(codes), "immunization": sorted(codes), "claims": sorted(codes)}
    path = out / "consents.json"
    path.write_text(json.dumps(data, indent=0), encoding="utf-8")
    return path


def generate(
    n: int,
    out: Path,
    key: str,
    *,
    seed: int = 1,
    year: int = 2025,
    months: int = 12,
    consent_share: float = 0.25,
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    city = make_city(n, seed, year)
    rnd = random.Random(seed + 1)  # noqa: S311 - seeded, reproducible synthetic data; not security
    consent_rnd = random.Random(seed + 2)  # noqa: S311 - seeded, reproducible synthetic data
    pseudo = Pseudonymizer(key)
    files: dict[str, object] = {
        "register": write_register(city, out),
        "mch": write_mch(city, out, rnd),
        "vaccination": write_vaccinations(city, out, rnd),
        "claims": write_claims(city, out, rnd, months),
        # its own stream, so who consents does not change with the exports' details
        "consents": write_consents(city, out, pseudo, consent_rnd, consent_share),
    }
    return files
