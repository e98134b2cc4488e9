"""Issue 18: a small deterministic slice of bench/fuzz_readers.py (hypothesis, fixed seeds) —
the UKE, MCH and vaccination readers and the PHR server's search-parameter parser: no crash,
no hang, every rejection explained (file, line, layout field, reason / the parameter and why).
The bench runs a million inputs (bench/fuzz_readers.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "bench" / "fuzz_readers.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_readers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FUZZ = _bench()


@pytest.mark.parametrize("target", ["uke", "mch_csv", "vaccination_csv", "fhir_search"])
def test_fuzz_slice(target: str, tmp_path: Path) -> None:
    stats = FUZZ.Stats()
    FUZZ.fuzz(target, FUZZ.targets(tmp_path)[target], 25, 18, stats, hang=10.0)
    assert stats.findings == []
    assert stats.inputs >= 25 and stats.problems > 0  # it did reach the rejections


def test_the_checks_catch_what_they_claim_to(tmp_path: Path) -> None:
    """The properties themselves can fail: a reader yielding a problem at line 0, or naming a
    value of the file as its field, is a finding."""
    from connectors.sources.base import Problem

    def bad_line(path: Path) -> list[Problem]:
        return [Problem(path.name, 0, "-", "x")]

    def bad_field(path: Path) -> list[Problem]:
        return [Problem(path.name, 1, "山田", "x")]

    for read in (bad_line, bad_field):
        with pytest.raises(FUZZ.Finding):
            FUZZ.check_reader(read, ["接種日"], tmp_path / "v.csv", b"a\r\n", FUZZ.Stats())
