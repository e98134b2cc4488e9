"""The example app is meant to be copied: it imports only the standard library, its own
modules and what its requirements.txt names, never the platform's packages."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.imports import absolute_imports

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vaccination_app"


def test_example_imports_nothing_of_the_platform() -> None:
    own = {p.stem for p in EXAMPLE.glob("*.py")}
    required = {
        re.split(r"[<>=\[ ]", line.strip())[0].lower()
        for line in (EXAMPLE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert required == {"flask", "requests"}
    for path in EXAMPLE.glob("*.py"):
        for name in absolute_imports(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in own or top.lower() in required, (
                f"{path.name} imports {name}"
            )
