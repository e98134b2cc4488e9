"""The checks made at every model object of a resource (its elements and data types): JSON
types, primitive formats, data type invariants and required bindings, per-1, qty-3, and
reference targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from phr_server import invariants
from phr_server.dates import value_range
from phr_server.issues import issue
from phr_server.validation.bindings import datatype_codes
from phr_server.validation.json_types import primitive_types
from phr_server.validation.references import check_reference, strip_indexes

QUANTITIES = ("Quantity", "Age", "Duration", "Distance", "Count", "Money")


def check_element(
    obj: BaseModel,
    p: str,
    raw_here: dict[str, Any],
    rtype: str,
    base: str,
    resolve: Callable[[str], str | None] | None,
    issues: list[dict[str, Any]],
) -> None:
    """Every check of one model object at `p` (raw JSON `raw_here`), appended to `issues`."""
    kind = type(obj).__name__
    primitive_types(obj, raw_here, p, issues)
    invariants.primitive_formats(obj, raw_here, p, issues)
    if (datatype_rule := invariants.DATATYPES.get(kind)) is not None:
        datatype_rule(raw_here, p, issues)
    datatype_codes(obj, kind, p, issues)
    if (
        kind == "Period"
        and getattr(obj, "start", None) is not None
        and getattr(obj, "end", None) is not None
    ):
        s = raw_here.get("start")
        e = raw_here.get("end")
        rs, re_ = value_range(s), value_range(e)
        if rs is not None and re_ is not None and rs[0] >= re_[1]:
            issues.append(issue(p, f"per-1: {p}.start is after its end"))
    if (
        kind in QUANTITIES
        and getattr(obj, "code", None) is not None
        and getattr(obj, "system", None) is None
    ):
        issues.append(issue(f"{p}.system", f"qty-3: {p} has a code but no system"))
    reference = getattr(obj, "reference", None) if kind == "Reference" else None
    if reference is not None:
        element = rtype + strip_indexes(p[len(base) :])
        issues.extend(check_reference(reference, p, element, resolve))
