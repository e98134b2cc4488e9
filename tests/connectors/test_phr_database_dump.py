"""What a dump of the PHR server's database shows after a synthetic city (through the connector,
over HTTP) and the demo family (phr_server.demo) are loaded: every table, every column, every
row as text. No name, address, resident or card number of the register, no twelve-digit
number, and no exact birth date: not as text, and not in the date index (birthdate rows are
whole months)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import MetaData, select

from connectors.http import TokenSource
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.register import read as read_register
from connectors.transport import FhirTransport
from phr_core.config import Settings
from phr_core.demo_data import DEMO_FAMILY
from tests.browser import live_server
from tests.connectors.helpers import CITY, KEY, consents, make_city, pii_strings
from tests.connectors.test_phr_server_e2e import CLIENT, SECRET, environ, idp  # noqa: F401

HEX = re.compile(r"[0-9a-f]{32,}")  # MACs and hashes: hex, not numbers
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # ids
TWELVE = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


def _occurs(value: str, text: str, numbers: set[str]) -> bool:
    """Whether `value` is in the dump. A number (an insurance card's 6-8 digits) counts only as
    a number of its own: inside the dump's microsecond times and row numbers a 6-digit string
    turns up by chance (it did, once in a few runs), and a stored card number would stand
    alone in its field. `numbers`: every run of digits in `text` (searching the dump once per
    number with look-arounds took minutes)."""
    if value.isascii() and value.isdigit():
        return value in numbers
    if value.isdigit():
        return re.search(rf"(?<![0-9]){value}(?![0-9])", text) is not None
    return value in text


def _dump(app: Flask) -> tuple[str, list[dict[str, Any]]]:
    """Every row of every table as text (bytes as Latin-1, so sealed bodies stay opaque bytes
    and a plain-text value inside them would still show), and the date index rows."""
    db = app.extensions["phr_db"]
    meta = MetaData()
    meta.reflect(db.engine)
    lines: list[str] = []
    date_rows: list[dict[str, Any]] = []
    with db.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                cells = []
                for v in row.values():
                    cells.append(v.decode("latin-1") if isinstance(v, bytes) else str(v))
                lines.append(table.name + "\t" + "\t".join(cells))
                if table.name == "fhir_date_index":
                    date_rows.append(dict(row))
    return "\n".join(lines), date_rows


def _date_forms(d: date) -> set[str]:
    return {d.isoformat(), d.strftime("%Y%m%d"), f"{d.year}年{d.month}月{d.day}日"}


def test_a_dump_of_the_phr_database_holds_no_personal_data(
    app_factory: Callable[[str], Flask],
    migrated: Settings,
    idp: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    from phr_server import demo
    from phr_server.dates import parse_range
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=200, months=1)
    with live_server(app) as url:
        connector = Connector(
            CITY,
            Pseudonymizer(KEY),
            consents(files["consents"]),
            FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET)),
            register_path=files["register"],
            report=Report(io.StringIO()),
        )
        for p in sorted((tmp_path / "inbox").iterdir()):
            if detect_source(p):
                summary = connector.run_file(p)
                assert summary.rejected == 0, connector.report.problems
    assert demo.load_family(app.extensions["phr_db"], migrated) > 0

    text, date_rows = _dump(app)
    assert "fhir_date_index" in text and "fhir_resource\t" in text  # the dump sees the data
    numbers = set(re.findall(r"[0-9]+", text))
    leaked = sorted(s for s in pii_strings(files["register"]) if _occurs(s, text, numbers))
    assert leaked == []
    assert TWELVE.findall(HEX.sub("", UUID.sub("", text))) == []

    births = {r.birthdate for r in read_register(files["register"])}
    births |= {DEMO_FAMILY.parent_birth, DEMO_FAMILY.child_birth(date.today())}
    assert sorted(f for b in births for f in _date_forms(b) if f in text) == []
    patient_rows = [r for r in date_rows if r["param"] == "birthdate"]
    assert len(patient_rows) > 10  # the city's and the family's Patients are indexed
    for r in patient_rows:  # each a whole month, never the day
        start = r["start_us"]
        assert r["end_us"] - start >= 28 * 86_400_000_000
    exact_days = {parse_range(b.isoformat()) for b in births}
    assert not any((r["start_us"], r["end_us"]) in exact_days for r in patient_rows)
