"""One bad row must never stop a city's load (issue 21): a UKE file and CSVs with poisoned rows
among good ones load every good row into a real HTTP server (tests/connectors/stub_server.py),
report each bad row with its file, line and layout field, and neither the report nor the
connector database's row errors hold a value from the file. On both databases."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.http import TokenSource
from connectors.models import RowError as RowErrorRow
from connectors.pipeline import Connector, Report
from connectors.pseudonym import Pseudonymizer
from connectors.sources import mch_csv, uke, vaccination_csv
from connectors.sources.base import detect_encoding
from connectors.transport import FhirTransport
from phr_core.config import Settings
from phr_core.db import Database
from tests.connectors.helpers import CITY, KEY, consents, make_city
from tests.connectors.stub_server import StubServer

MARK = "〒"  # in no field name and no reason: where it shows up, a value leaked
ADDRESS = f"{MARK}福島県会津若松市追手町1番1号 山田 花子"


@pytest.fixture
def city(tmp_path: Path) -> dict[str, Any]:
    return make_city(tmp_path / "inbox", n=400, months=1, share=0.6)


def _connector(city: dict[str, Any], server: StubServer | None, db: Database | None) -> Connector:
    sink = None
    if server is not None:
        sink = FhirTransport(server.url, TokenSource(server.url, "connector-test", "s3cret"))
    return Connector(
        CITY,
        Pseudonymizer(KEY),
        consents(city["consents"]),
        sink,
        db=db,
        register_path=city["register"],
        report=Report(io.StringIO()),
        batch_size=60,
    )


def _consented_rows(city: dict[str, Any], path: Path) -> int:
    """Rows of `path` the connector would send (a dry run: parse, gate, map, validate)."""
    s = _connector(city, None, None).run_file(path)
    return s.read - s.skipped_no_consent


def _reported(c: Connector) -> io.StringIO:
    """Write `c`'s rejected-rows report (the CSV `phr connector run --report` writes) here."""
    buf = io.StringIO()
    c.report = Report(buf)
    return buf


def _row_errors(db: Database) -> list[tuple[str, int, str, str]]:
    with db.session() as s:
        rows = s.scalars(select(RowErrorRow).order_by(RowErrorRow.id)).all()
        return [(r.file_name, r.line, r.field, r.reason) for r in rows]


def _no_source_values(text: str, values: list[str]) -> None:
    assert MARK not in text
    for v in values:
        assert v not in text, v


def _set(line: str, n: int, value: str) -> str:
    cells = line.split(",")
    cells[n - 1] = value
    return ",".join(cells)


def test_poisoned_uke_receipts_are_reported_and_every_good_one_loads(
    city: dict[str, Any], migrated: Settings, tmp_path: Path
) -> None:
    path = Path(city["claims"][0])
    raw = path.read_bytes().decode("cp932").rstrip("\x1a")
    lines = [x for x in raw.split("\r\n") if x]
    starts = [i for i, x in enumerate(lines) if x.startswith("RE,")]
    first_ir_end = next(i for i, x in enumerate(lines) if x.startswith("GO"))
    picked = [i for i in starts if i < first_ir_end][:6]
    assert len(picked) == 6

    def at(receipt: int, rt: str) -> int:
        i = picked[receipt]
        while not lines[i].startswith(rt + ","):
            i += 1
        return i

    poisons = [  # (line index, new line, field the report must name)
        (at(0, "HO"), _set(lines[at(0, "HO")], 5, "①"), "HO.診療実日数"),
        (at(1, "SI"), _set(lines[at(1, "SI")], 6, "1②"), "SI.点数"),
        (at(2, "RE"), _set(lines[at(2, "RE")], 4, "20250①"), "RE.診療年月"),
        (at(3, "SY"), _set(lines[at(3, "SY")], 3, "99991231"), "SY.診療開始日"),
        (at(4, "HO"), _set(lines[at(4, "HO")], 6, "１２３"), "HO.合計点数"),
    ]
    clean_receipts = []
    for receipt in range(5):
        end = next((j for j in starts if j > picked[receipt]), first_ir_end)
        clean_receipts += lines[picked[receipt] : end]
    subset = tmp_path / "subset" / path.name
    subset.parent.mkdir()
    subset.write_bytes(
        "".join(x + "\r\n" for x in [lines[0], *clean_receipts, "GO,1,1,99"]).encode("cp932")
    )
    for i, new, _ in poisons:
        lines[i] = new
    # A line break inside a free-text comment: the rest of the comment (an address) starts a
    # line of its own inside receipt 5, and another such line stands outside any receipt.
    stray_in = at(5, "HO") + 1
    lines.insert(stray_in, ADDRESS)
    lines.insert(picked[0], ADDRESS + ",電話")
    poisoned = tmp_path / "poisoned" / path.name
    poisoned.parent.mkdir()
    poisoned.write_bytes("".join(x + "\r\n" for x in lines).encode("cp932") + b"\x1a")

    db = Database(migrated.database_urls["connector"])
    with StubServer() as clean_server, StubServer() as server:
        clean = _connector(city, clean_server, None).run_file(path)
        lost = _consented_rows(city, subset)  # poisoned receipts 0-4 that would have been sent
        lost += _consented_rows(city, _one_receipt(lines, stray_in, tmp_path))
        c = _connector(city, server, db)
        report = _reported(c)
        s = c.run_file(poisoned)
        assert (clean.rejected, s.rejected) == (0, 7)
        assert s.sent == clean.sent - lost
        for key, res in server.state.store.items():  # what loaded is exactly the clean load
            assert clean_server.state.store[key] == res
    got = [(p.line, p.field) for p in c.report.problems]
    want = [(i + 2, field) for i, _, field in poisons]  # +1: 1-based, +1: the stray line
    want.insert(0, (picked[0] + 1, uke.RECORD_TYPE))
    want.append((stray_in + 2, uke.RECORD_TYPE))
    assert sorted(got) == sorted(want)
    assert _row_errors(db) == [
        (poisoned.name, p.line, p.field, p.reason) for p in c.report.problems
    ]
    _no_source_values(
        repr(_row_errors(db)) + report.getvalue(), ["①", "②", "１２３", "9999", "山田"]
    )
    db.dispose()


def _one_receipt(lines: list[str], inside: int, tmp_path: Path) -> Path:
    """The receipt holding line `inside`, without the stray line, as a file of its own."""
    start = max(i for i in range(inside + 1) if lines[i].startswith("RE,"))
    end = next(i for i in range(inside + 1, len(lines)) if lines[i][:3] in ("RE,", "GO,"))
    body = [x for x in lines[start:end] if not x.startswith(MARK)]
    path = tmp_path / "one" / "RECEIPTC.UKE"
    path.parent.mkdir(exist_ok=True)
    head = next(x for x in lines if x.startswith("IR,"))
    path.write_bytes("".join(x + "\r\n" for x in [head, *body, "GO,1,1,99"]).encode("cp932"))
    return path


CSV_POISONS = {
    "vaccination": [
        ("回数", "①"),
        ("接種日", "9999-12-31"),
        ("接種医療機関コード", "'; DROP TABLE residents; --"),
        ("ロット番号", ADDRESS),
        ("回数", "²"),
    ],
    "mch": [
        ("実施日", "99991231"),
        ("医療機関コード", "0714992383'; DROP TABLE residents; --"),
        ("記録種別", ADDRESS),
        ("実施日", "2025-0①-01"),
    ],
}


@pytest.mark.parametrize("source", ["vaccination", "mch"])
def test_poisoned_csv_rows_are_reported_and_every_good_one_loads(
    city: dict[str, Any], migrated: Settings, tmp_path: Path, source: str
) -> None:
    path = Path(city[source])
    module = vaccination_csv if source == "vaccination" else mch_csv
    raw = path.read_bytes()
    text = raw.decode(detect_encoding(raw))
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert header == module.HEADERS
    targets = list(range(3, 3 + 7 * len(CSV_POISONS[source]), 7))
    subset = tmp_path / "subset" / path.name
    subset.parent.mkdir()
    _write_csv(subset, [header, *(body[i] for i in targets)])
    for i, (column, value) in zip(targets, CSV_POISONS[source], strict=True):
        body[i][header.index(column)] = value
    poisoned = tmp_path / "poisoned" / path.name
    poisoned.parent.mkdir()
    _write_csv(poisoned, [header, *body])

    db = Database(migrated.database_urls["connector"])
    with StubServer() as clean_server, StubServer() as server:
        clean = _connector(city, clean_server, None).run_file(path)
        lost = _consented_rows(city, subset)
        c = _connector(city, server, db)
        report = _reported(c)
        s = c.run_file(poisoned)
        assert (clean.rejected, s.rejected) == (0, len(targets))
        assert s.sent == clean.sent - lost
        for key, res in server.state.store.items():
            assert clean_server.state.store[key] == res
    assert [(p.line, p.field) for p in c.report.problems] == [
        (i + 2, column) for i, (column, _) in zip(targets, CSV_POISONS[source], strict=True)
    ]
    assert _row_errors(db) == [
        (poisoned.name, p.line, p.field, p.reason) for p in c.report.problems
    ]
    _no_source_values(repr(_row_errors(db)) + report.getvalue(), ["①", "²", "9999", "DROP", "山田"])
    db.dispose()


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
