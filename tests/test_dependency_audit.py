"""The dependency audit's fallback (.ci/pypi_latest_audit.py): a package installed below its
newest release is NOT AUDITED, and the report names what holds it there."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pypi_latest_audit", ROOT / ".ci/pypi_latest_audit.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_older_release_is_explained_by_the_requirement_that_excludes_the_newest() -> None:
    held_back_by = _script().held_back_by
    requirements = [
        ("pyOpenSSL 26.4.0", "cryptography<51,>=49.0.0"),
        ("joserfc 1.8.0", "cryptography>=45.0.1"),  # allows the newest: not a reason
        ("pypdf 7.1.1", 'cryptography<40; extra == "crypto"'),  # an extra not installed
        ("webauthn 3.0.1", "Cryptography!=51.0.1"),  # names are compared canonically
        ("Authlib 1.9.10", "requests<1"),  # another package
    ]
    assert held_back_by("cryptography", "51.0.1", requirements) == [
        "pyOpenSSL 26.4.0 requires cryptography<51,>=49.0.0",
        "webauthn 3.0.1 requires Cryptography!=51.0.1",
    ]
    assert held_back_by("cryptography", "50.0.2", requirements) == []
