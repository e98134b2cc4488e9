"""The registry of sources: files are recognised by the kinds each source registered, the
pipeline and `phr connector run` find a source's reader, gate and mapper there, and a new
source is one registration (no `if source == …` to extend)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import source_registry
from connectors.consent import StaticConsent
from connectors.mapping.common import Context, Entry, ident
from connectors.pipeline import Connector, Report
from connectors.pseudonym import Pseudonymizer
from connectors.source_registry import (
    SOURCES,
    Source,
    by_resident_number,
    detect_source,
    get,
    read_source,
    register,
)
from connectors.sources.base import Problem, Record
from tests.connectors.helpers import CITY, KEY, Recorder

SAMPLES = Path(source_registry.__file__).parent / "samples"


def test_the_three_sources_and_their_consent_categories() -> None:
    assert [(s.name, s.category) for s in SOURCES.values()] == [
        ("mch", "mch"),
        ("vaccination", "immunization"),
        ("uke", "claims"),
    ]
    assert [s.name for s in SOURCES.values() if s.needs_register] == ["uke"]


@pytest.mark.parametrize(
    ("name", "content", "want"),
    [
        ("claims.uke", b"", "uke"),  # by suffix, whatever the content
        ("claims.dat", b"IR,2,07,1,3188131,,x,202502,00,\r\n", "uke"),  # by its first bytes
        ("rx.dat", b"YK,2,07,4,2099391,x,202502,00,\r\n", "uke"),
        ("mch.csv", "記録番号,記録種別,住民番号\r\n".encode("cp932"), "mch"),  # by a column
        ("vacc.csv", "記録番号,住民番号,ワクチン\n".encode(), "vaccination"),
        ("notes.txt", b"nothing known\n", None),
        ("empty.csv", b"", None),
    ],
)
def test_files_are_recognised_by_the_kinds_their_source_registered(
    tmp_path: Path, name: str, content: bytes, want: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_source(path) == want
    assert detect_source(tmp_path) is None  # a folder is no export file


def test_reading_by_name_uses_the_registered_reader() -> None:
    items = list(read_source("uke", SAMPLES / "RECEIPTC.UKE"))
    assert items and all(isinstance(i, Record) and i.source == "uke" for i in items)
    with pytest.raises(ValueError, match="unknown source nope"):
        get("nope")
    with pytest.raises(ValueError, match="registered already"):
        register(SOURCES["uke"])


def _read_notes(path: Path) -> Iterator[Record | Problem]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], start=2):
        resident, text = line.split(",", 1)
        if not text:
            yield Problem(path.name, n, "メモ", "empty")
        else:
            yield Record("notes", "note", n, f"note-{n}", resident, {"text": text})


def _map_note(ctx: Context, _pseudo: Pseudonymizer, rec: Record, code: str) -> list[Entry]:
    system = ctx.record_system("notes")
    return [
        ctx.patient(code),
        Entry(
            "Basic",
            system,
            rec.key,
            {
                "resourceType": "Basic",
                "identifier": ident(system, rec.key),
                "code": {"text": "note"},
                "subject": ctx.patient_ref(code),
            },
        ),
    ]


def test_a_new_source_is_one_registration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source registered with its file kind, reader, consent category, gate and mapper is
    recognised, gated and loaded by the pipeline with nothing else to change."""
    notes = Source(
        name="notes",
        category="notes",
        read=_read_notes,
        gate=by_resident_number,
        map=_map_note,
        header_mark="メモ",
    )
    monkeypatch.setitem(SOURCES, "notes", notes)
    path = tmp_path / "notes.csv"
    path.write_text("住民番号,メモ\n1000000001,hello\n1000000002,hi\n1000000003,\n", "utf-8")
    assert detect_source(path) == "notes"
    pseudo = Pseudonymizer(KEY)
    sink = Recorder()
    report = io.StringIO()
    c = Connector(
        CITY,
        pseudo,
        StaticConsent({"notes": [pseudo.code("1000000001")]}),
        sink,
        report=Report(report),
    )
    s = c.run_file(path)
    assert (s.read, s.skipped_no_consent, s.rejected, s.sent) == (2, 1, 1, 1)
    assert "notes.csv,4,メモ,empty" in report.getvalue()
    sent = json.dumps(sink.bundles)
    assert pseudo.code("1000000001") in sent and pseudo.code("1000000002") not in sent
    assert "note-2" not in sent  # the row key was pseudonymised by the gate
