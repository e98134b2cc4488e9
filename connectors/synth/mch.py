"""Maternal and child health records (pregnancy notices, prenatal checkups, births, infant
checkups) and the vaccination register of the synthetic city, on the routine schedule of
mch.md. SCHEDULE, INFANT_CHECKUPS and GROWTH also feed the development sandbox's demo child."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

from connectors.sources.mch_csv import HEADERS as MCH_HEADERS
from connectors.sources.vaccination_csv import HEADERS as VACC_HEADERS
from connectors.synth.people import City

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


def _in_year(d: date, year: int) -> bool:
    return d.year == year


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
