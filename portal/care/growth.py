"""Growth charts: a child's weight, length/height and head circumference against the Japanese
infant growth percentiles of the 2023 national survey (portal/care/data/), drawn as an SVG on
the server (no JavaScript), with the source on the chart and a table alternative.

Reading the reference as its README asks (../shared/data/growth/README.md): the values
describe age bands, so each band is plotted at its midpoint (出生時 at 0, 30日 at 0.99 months,
one-month bands at start + 0.5, six-month bands at start + 3); the day 1–4 weight medians are
left out (a monthly axis); values between plotted ages are interpolated linearly and never
beyond the first or last band of a measure; a measurement is placed between the two
neighbouring published percentiles, and below p3 or above p97 is said so, not extrapolated. No
LMS z-scores: the survey published no L, M, S parameters.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from html import escape
from pathlib import Path

DATA = Path(__file__).parent / "data" / "jp_infant_growth_2023.csv"
PERCENTILES = (3, 10, 25, 50, 75, 90, 97)
DAYS_PER_MONTH = 365.25 / 12
SOURCE_JA = "出典：こども家庭庁「令和5年乳幼児身体発育調査」"
SOURCE_EN = "Source: Children and Families Agency, 2023 National Infant Growth Survey"

# measure → (LOINC codes, unit shown, JP name, English name)
MEASURES: dict[str, tuple[frozenset[str], str, str, str]] = {
    "weight": (frozenset({"29463-7", "8339-4"}), "kg", "体重", "Weight"),
    "height": (frozenset({"8302-2", "8306-3", "3137-7"}), "cm", "身長", "Length / height"),
    "head_circumference": (frozenset({"9843-4", "8287-5"}), "cm", "頭囲", "Head circumference"),
}
# UCUM unit → factor to the measure's unit
TO_KG = {"kg": 1.0, "g": 0.001}
TO_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0}


@dataclass(frozen=True)
class RefPoint:
    age_m: float  # plotting age in months
    values: tuple[float, ...]  # p3 … p97


@dataclass(frozen=True)
class Measurement:
    day: date
    age_m: float
    value: float


@functools.cache
def reference(measure: str, sex: str) -> tuple[RefPoint, ...]:
    """The 2023 survey's percentiles of one measure and sex, at plotting ages, in age order."""
    points = []
    with DATA.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["survey"] != "2023" or row["measure"] != measure or row["sex"] != sex:
                continue
            cells = [row[f"p{p}"] for p in PERCENTILES]
            if any(not c for c in cells):
                continue  # the day 1–4 rows (medians only)
            points.append(RefPoint(_plot_age(row), tuple(float(c) for c in cells)))
    return tuple(sorted(points, key=lambda p: p.age_m))


def _plot_age(row: dict[str, str]) -> float:
    start = float(row["age_band_start_months"])
    label = row["age_band_label_ja"]
    if label == "出生時" or label.endswith("日"):
        return start  # points in time, not bands
    if start < 12:
        return start + 0.5  # one-month bands
    return start + 3.0  # six-month bands


def at_age(ref: tuple[RefPoint, ...], age_m: float) -> tuple[float, ...] | None:
    """The percentiles at `age_m`, linear between plotted ages; None outside the table."""
    if not ref or age_m < ref[0].age_m or age_m > ref[-1].age_m:
        return None
    for a, b in itertools.pairwise(ref):
        if a.age_m <= age_m <= b.age_m:
            f = 0.0 if b.age_m == a.age_m else (age_m - a.age_m) / (b.age_m - a.age_m)
            return tuple(x + (y - x) * f for x, y in zip(a.values, b.values, strict=True))
    return ref[-1].values


def band(ref: tuple[RefPoint, ...], m: Measurement) -> tuple[int | None, int | None] | None:
    """(lower, upper) published percentiles around the measurement: (None, 3) below p3,
    (97, None) above p97; None when the age is outside the table."""
    values = at_age(ref, m.age_m)
    if values is None:
        return None
    if m.value < values[0]:
        return (None, 3)
    if m.value > values[-1]:
        return (97, None)
    for i in range(len(values) - 1):
        if values[i] <= m.value <= values[i + 1]:
            return (PERCENTILES[i], PERCENTILES[i + 1])
    return (97, None)


def band_words(b: tuple[int | None, int | None] | None, lang: str) -> str:
    ja = lang == "ja"
    if b is None:
        return "基準値の範囲外の月齢" if ja else "age outside the reference table"
    low, high = b
    if low is None:
        return "3パーセンタイル未満" if ja else "below the 3rd percentile"
    if high is None:
        return "97パーセンタイル超" if ja else "above the 97th percentile"
    if ja:
        return f"{low}〜{high}パーセンタイル"
    return f"between the {_ordinal(low)} and {_ordinal(high)} percentile"


def _ordinal(n: int) -> str:
    return f"{n}{'rd' if n % 10 == 3 and n != 13 else 'th'}"


def measurements(observations: Iterable[dict], birth: date) -> dict[str, list[Measurement]]:
    """A child's measurements from FHIR Observations, by measure, in age order (units
    converted to kg / cm; an Observation in any other unit is left out)."""
    out: dict[str, list[Measurement]] = {m: [] for m in MEASURES}
    for obs in observations:
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        codes = {
            c.get("code")
            for c in (obs.get("code") or {}).get("coding", [])
            if c.get("system") == "http://loinc.org"
        }
        measure = next((m for m, spec in MEASURES.items() if codes & spec[0]), None)
        q = obs.get("valueQuantity") or {}
        when = str(obs.get("effectiveDateTime") or "")[:10]
        if measure is None or not isinstance(q.get("value"), int | float):
            continue
        table = TO_KG if measure == "weight" else TO_CM
        factor = table.get(str(q.get("code") or q.get("unit") or ""))
        try:
            day = date.fromisoformat(when)
        except ValueError:
            continue
        if factor is None or day < birth:
            continue
        age = (day - birth).days / DAYS_PER_MONTH
        out[measure].append(Measurement(day, age, round(q["value"] * factor, 3)))
    for items in out.values():
        items.sort(key=lambda m: m.day)
    return out


# --- the SVG ----------------------------------------------------------------------------------

W, H = 360, 270
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 14, 52
FILLS = ("#dbe9f6", "#b9d3ee", "#94bde6")  # p3–97, p10–90, p25–75


def x_range(points: list[Measurement], ref: tuple[RefPoint, ...]) -> float:
    """Months shown: at least a year and past the last measurement, ending on a plotted age of
    the table (so the bands reach the edge), never past the table."""
    want = max(12.0, max((p.age_m for p in points), default=0.0) + 1)
    for r in ref:
        if r.age_m >= want:
            return r.age_m
    return ref[-1].age_m if ref else want


def chart_svg(measure: str, sex: str, points: list[Measurement], lang: str, uid: str) -> str:
    """The chart as an inline SVG string (escaped; safe to mark as Markup)."""
    ref = reference(measure, sex)
    _, unit, name_ja, name_en = MEASURES[measure]
    name = name_ja if lang == "ja" else name_en
    xmax = x_range(points, ref)
    shown = [r for r in ref if r.age_m <= xmax]
    inside = [p for p in points if p.age_m <= xmax]
    lows = [r.values[0] for r in shown] + [p.value for p in inside]
    highs = [r.values[-1] for r in shown] + [p.value for p in inside]
    y0, y1 = _nice(min(lows), max(highs))

    def x(a: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * a / xmax

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - y0) / (y1 - y0))

    title = f"{name}（{unit}）の成長曲線" if lang == "ja" else f"{name} ({unit}) growth chart"
    desc = _desc(measure, inside, ref, lang, xmax)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="{uid}-title {uid}-desc" class="growth-chart" id="{uid}">',
        f'<title id="{uid}-title">{escape(title)}</title>',
        f'<desc id="{uid}-desc">{escape(desc)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
        'fill="#fff" stroke="#9aa5b1"/>',
    ]
    for (lo, hi), fill in zip(((0, 6), (1, 5), (2, 4)), FILLS, strict=True):
        upper = " ".join(f"{x(r.age_m):.1f},{y(r.values[hi]):.1f}" for r in shown)
        lower = " ".join(f"{x(r.age_m):.1f},{y(r.values[lo]):.1f}" for r in reversed(shown))
        parts.append(
            f'<polygon points="{upper} {lower}" fill="{fill}" class="band-p{PERCENTILES[lo]}"/>'
        )
    median = " ".join(f"{x(r.age_m):.1f},{y(r.values[3]):.1f}" for r in shown)
    parts.append(
        f'<polyline points="{median}" fill="none" stroke="#52606d" stroke-dasharray="4 3"/>'
    )
    for v in _ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{LEFT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#52606d"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{v:g}</text>'
        )
    step = 3 if xmax <= 24 else 6 if xmax <= 48 else 12
    for a in range(0, int(xmax) + 1, step):
        parts.append(
            f'<line x1="{x(a):.1f}" x2="{x(a):.1f}" y1="{H - BOTTOM}" y2="{H - BOTTOM + 4}" '
            f'stroke="#52606d"/><text x="{x(a):.1f}" y="{H - BOTTOM + 15}" font-size="10" '
            f'text-anchor="middle">{a}</text>'
        )
    axis = f"月齢（か月）・{name}（{unit}）" if lang == "ja" else f"age (months) · {name} ({unit})"
    parts.append(f'<text x="{LEFT}" y="{H - BOTTOM + 28}" font-size="10">{escape(axis)}</text>')
    if inside:
        line = " ".join(f"{x(p.age_m):.1f},{y(p.value):.1f}" for p in inside)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#b42318" stroke-width="1.5"/>')
        for p in inside:
            parts.append(
                f'<circle cx="{x(p.age_m):.1f}" cy="{y(p.value):.1f}" r="3.5" fill="#b42318" '
                f'class="child-point"><title>{escape(_point_words(p, unit, lang))}</title></circle>'
            )
    source = SOURCE_JA if lang == "ja" else SOURCE_EN
    parts.append(
        f'<text x="{LEFT}" y="{H - 8}" font-size="9" class="chart-source">{escape(source)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _point_words(p: Measurement, unit: str, lang: str) -> str:
    if lang == "ja":
        return f"{p.day.isoformat()}（{p.age_m:.1f}か月）{p.value:g} {unit}"
    return f"{p.day.isoformat()} ({p.age_m:.1f} months) {p.value:g} {unit}"


def _desc(
    measure: str, points: list[Measurement], ref: tuple[RefPoint, ...], lang: str, xmax: float
) -> str:
    bands = "3–97, 10–90, 25–75"
    if lang == "ja":
        head = (
            f"0〜{xmax:g}か月の基準帯（{bands}パーセンタイル、中央値は破線）と、"
            f"お子さんの計測 {len(points)} 件。"
        )
    else:
        head = (
            f"Reference bands for 0–{xmax:g} months ({bands}th percentiles, median dashed) "
            f"and the child's {len(points)} measurements."
        )
    if points:
        last = points[-1]
        said = _point_words(last, MEASURES[measure][1], lang)
        where = band_words(band(ref, last), lang)
        head += f" 最新：{said}、{where}。" if lang == "ja" else f" Latest: {said}, {where}."
    return head


def _nice(lo: float, hi: float) -> tuple[float, float]:
    step = _step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _step(span: float) -> float:
    for s in (0.5, 1, 2, 5, 10, 20):
        if span / s <= 8:
            return s
    return 50


def _ticks(lo: float, hi: float) -> list[float]:
    step = _step(hi - lo)
    n = round((hi - lo) / step)
    return [round(lo + i * step, 3) for i in range(n + 1)]
