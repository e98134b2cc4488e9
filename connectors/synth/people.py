"""The synthetic city's residents: households (adults, mothers with young children), their
addresses and 国保 insurance, the clinics and pharmacies, and the resident register file."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from connectors.register import HEADERS as REGISTER_HEADERS

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


def write_register(city: City, out: Path) -> Path:
    path = out / "register.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REGISTER_HEADERS)
        for p in city.people:
            ins = p.insurance or ("", "", "", "")
            w.writerow([p.number, p.name, "", p.birth.isoformat(), p.sex, p.address, *ins])
    return path
