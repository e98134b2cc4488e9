"""Issue 18, "a receipt can vanish without a word": two receipts of one person at one facility
in one month and of one receipt type (a second receipt after a change of insurer, a 公費
receipt beside the insurer's) are two claims; a receipt repeated with the same レセプト番号 is a
reported row error; a load stays idempotent; the first receipt keeps the identifier earlier
versions gave it, so claims already loaded are not duplicated. Through the real pipeline into
the loopback PHR server stand-in, with the connector database on both backends."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.consent import StaticConsent
from connectors.http import TokenSource, TransportError
from connectors.pipeline import Connector, Report
from connectors.pseudonym import Pseudonymizer
from connectors.register import read as read_register
from connectors.transport import FhirTransport
from phr_core.config import Settings
from phr_core.db import Database
from tests.connectors.helpers import CITY, KEY, make_city
from tests.connectors.stub_server import StubServer

FACILITY10 = "0711234567"


def _pad(cells: list[str], n: int) -> str:
    return ",".join(cells + [""] * (n - len(cells)))


def _receipt(no: int, insurer: str, symbol: str, number: str, branch: str, ko: bool) -> list[str]:
    lines = [
        _pad(["RE", str(no), "1112", "202503", "テスト", "1", "19800101", "70"], 38),
        _pad(["HO", insurer, symbol, number, "1", "300"], 15),
    ]
    if ko:
        lines.append(_pad(["KO", "81070285", "", "", "1", "300"], 12))
    lines.append(_pad(["SN", "1", "01", insurer, symbol, number, branch], 9))
    lines.append(_pad(["SY", "8840107", "20250301", "1", "", "", "01"], 8))
    return lines


def _uke(path: Path, receipts: list[list[str]]) -> Path:
    lines = [_pad(["IR", "2", "07", "1", FACILITY10[3:], "", "テスト医院", "202504", "00"], 10)]
    for r in receipts:
        lines += r
    lines.append(_pad(["GO", str(len(receipts)), "600", "99"], 4))
    path.write_bytes("".join(x + "\r\n" for x in lines).encode("cp932") + b"\x1a")
    return path


@pytest.fixture
def person(tmp_path: Path) -> dict[str, Any]:
    """A consenting resident with an insurance card, from a small synthetic city."""
    files = make_city(tmp_path / "city", n=60, months=1, share=1.0)
    claims = set(json.loads(Path(files["consents"]).read_text(encoding="utf-8"))["claims"])
    pseudo = Pseudonymizer(KEY)
    for r in read_register(files["register"]):
        if r.insurance_key and pseudo.code(r.number) in claims:
            insurer, symbol, number, branch = r.insurance_key.split("|")
            return {
                "files": files,
                "code": pseudo.code(r.number),
                "card": (insurer, symbol, number, branch),
                "claims": claims,
            }
    raise AssertionError("no consenting resident with an insurance card")


def _run(
    person: dict[str, Any],
    server: StubServer,
    db: Database | None,
    path: Path,
    report: io.StringIO,
    batch_size: int = 500,
) -> Any:
    tokens = TokenSource(server.url, "connector-test", "s3cret")
    c = Connector(
        CITY,
        Pseudonymizer(KEY),
        StaticConsent({"claims": person["claims"]}),
        sink=FhirTransport(server.url, tokens, backoff=0.001, retries=1),
        db=db,
        register_path=person["files"]["register"],
        report=Report(report),
        batch_size=batch_size,
    )
    return c.run_file(path)


def _eobs(server: StubServer) -> list[dict[str, Any]]:
    return server.state.resources("ExplanationOfBenefit")


def test_two_receipts_of_one_month_are_two_claims_and_a_repeat_is_reported(
    person: dict[str, Any], migrated: Settings, tmp_path: Path
) -> None:
    db = Database(migrated.database_urls["connector"])
    insurer, symbol, number, branch = person["card"]
    card = (insurer, symbol, number, branch)
    path = _uke(
        tmp_path / "RECEIPTC.UKE",
        [
            _receipt(1, *card, ko=False),
            _receipt(2, *card, ko=True),  # the 公費 receipt beside the insurer's
            _receipt(2, *card, ko=True),  # the same レセプト番号 again: a broken file
        ],
    )
    report = io.StringIO()
    with StubServer() as server:
        first = _run(person, server, db, path, report)
        eobs = _eobs(server)
        assert (first.read, first.rejected) == (3, 1)
        assert len(eobs) == 2  # neither receipt replaced the other
        # the repeat is reported: file, the line of its RE (IR 1, receipts at 2 and 6), field,
        # and the reason naming the receipt it repeats
        (row,) = [r for r in report.getvalue().splitlines() if r.startswith("RECEIPTC.UKE,")]
        assert row.startswith('RECEIPTC.UKE,11,RE.レセプト番号,"the same receipt as line 6 ')

        # The first receipt keeps the identifier earlier versions gave it (facility, 診療年月,
        # type, person): a claim loaded before this change is updated, never duplicated.
        old = hashlib.sha256(f"{FACILITY10}:202503:1112:{person['code']}".encode()).hexdigest()
        values = sorted(i["value"] for e in eobs for i in e["identifier"])
        assert "claim:" + old[:32] in values and len(set(values)) == 2

        # Idempotent: the same file again creates nothing and sends nothing new.
        store = dict(server.state.store)
        again = _run(person, server, db, path, io.StringIO())
        assert server.state.store == store
        assert again.created == 0 and again.skipped_unchanged == 2 and again.rejected == 1
    db.dispose()


def test_a_resumed_run_names_the_receipts_as_a_full_run_does(
    person: dict[str, Any], migrated: Settings, tmp_path: Path
) -> None:
    """A run that stops after the first receipt's batch resumes after it: the receipt after it
    must still get the second identifier, not the first one's (which would overwrite it)."""
    insurer, symbol, number, branch = person["card"]
    card = (insurer, symbol, number, branch)
    path = _uke(
        tmp_path / "RECEIPTC.UKE", [_receipt(1, *card, ko=False), _receipt(2, *card, ko=True)]
    )
    with StubServer() as clean:
        _run(person, clean, None, path, io.StringIO(), batch_size=1)
        want = dict(clean.state.store)
    db = Database(migrated.database_urls["connector"])
    with StubServer() as server:
        server.state.fail_after = 1  # the first receipt's batch lands, then the server is away
        with pytest.raises(TransportError):
            _run(person, server, db, path, io.StringIO(), batch_size=1)
        server.state.fail_after = None
        _run(person, server, db, path, io.StringIO(), batch_size=1)
        assert server.state.store == want and len(_eobs(server)) == 2
    db.dispose()
