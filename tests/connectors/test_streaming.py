"""Streaming: peak memory of reading, gating, mapping and validating stays flat as the input
grows (tracemalloc at two sizes, the second four times the first)."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

from connectors.consent import StaticConsent
from connectors.pipeline import Connector, Report
from connectors.pseudonym import Pseudonymizer
from connectors.sources import mch_csv, uke
from tests.connectors.helpers import CITY, KEY

ROW = "{k},妊婦健診,{r},,2025-04-01,0712345678,,20,3,56.2,,,,80.1,18.5,112,70,-,-,-,,,,,,,"


def _mch(path: Path, n: int) -> Path:
    with path.open("w", encoding="cp932", newline="") as fh:
        fh.write(",".join(mch_csv.HEADERS) + "\r\n")
        for i in range(n):
            fh.write(ROW.format(k=f"R{i}", r=f"{1000000000 + i % 50}") + "\r\n")
    return path


def _uke(path: Path, n: int) -> Path:
    with path.open("wb") as fh:
        fh.write("IR,2,07,1,1234567,,テスト医院,202504,00,\r\n".encode("cp932"))
        for i in range(n):
            lines = [
                f"RE,{i + 1},1112,202503,山田 太郎,1,19500101,70" + "," * 30,
                f"HO,070284,12,{100000 + i % 50},2,500,,,,,,150,,,",
                f"SN,1,01,070284,12,{100000 + i % 50},01,,",
                "SY,8840107,20250301,1,,,01,",
                "SI,12,1,112007410,,73,1,,,,,,," + "1" + "," * 30,
            ]
            fh.write(("\r\n".join(lines) + "\r\n").encode("cp932"))
        fh.write(b"GO,1,1,99\r\n\x1a")
    return path


def _peak(fn) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_readers_stream(tmp_path: Path) -> None:
    small, large = _mch(tmp_path / "s.csv", 1500), _mch(tmp_path / "l.csv", 6000)
    p_small = _peak(lambda: sum(1 for _ in mch_csv.read(small)))
    p_large = _peak(lambda: sum(1 for _ in mch_csv.read(large)))
    assert p_large < p_small * 1.15 + 32_000, (p_small, p_large)
    us, ul = _uke(tmp_path / "s.UKE", 1000), _uke(tmp_path / "l.UKE", 4000)
    p_small = _peak(lambda: sum(1 for _ in uke.read(us)))
    p_large = _peak(lambda: sum(1 for _ in uke.read(ul)))
    assert p_large < p_small * 1.15 + 32_000, (p_small, p_large)


def test_pipeline_streams(tmp_path: Path) -> None:
    """The whole dry run (consent gate, mapping, validation, batching) with the same 50
    consenting people: four times the rows must not need more memory."""
    pseudo = Pseudonymizer(KEY)
    codes = {pseudo.code(str(1000000000 + i)) for i in range(50)}
    consent = StaticConsent({"mch": codes, "immunization": codes, "claims": codes})
    small, large = _mch(tmp_path / "s.csv", 300), _mch(tmp_path / "l.csv", 1200)

    class Null:
        def send(self, entries):  # type: ignore[no-untyped-def]
            from connectors.transport import Outcomes

            return Outcomes(unchanged=len(entries))

    def run(path: Path) -> None:
        c = Connector(CITY, pseudo, consent, Null(), report=Report(io.StringIO()), batch_size=200)
        s = c.run_file(path, "mch")
        assert s.sent > 0

    run(small)  # warm caches (model classes, imports) outside the measurement
    p_small = _peak(lambda: run(small))
    p_large = _peak(lambda: run(large))
    assert p_large < p_small * 1.15 + 32_000, (p_small, p_large)
