"""One OperationOutcome issue as the validators report it (severity error, the element as a
FHIRPath `expression`); shared by validation, invariants, profiles and vital signs."""

from __future__ import annotations

from typing import Any


def issue(expression: str, diagnostics: str, code: str = "invalid") -> dict[str, Any]:
    return {
        "severity": "error",
        "code": code,
        "diagnostics": diagnostics,
        "expression": [expression],
    }


def invariant_issue(expression: str, diagnostics: str, code: str = "invariant") -> dict[str, Any]:
    """A broken rule of the specification or a profile (code `invariant` unless said)."""
    return issue(expression, diagnostics, code)
