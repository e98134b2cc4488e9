"""The first gate: a type this server accepts, a well-formed id, and the fhir.resources R4B
model's structure, types and cardinality. What passes comes back as the model for the other
checks to walk."""

from __future__ import annotations

import functools
import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

from phr_server.indexing import TYPES
from phr_server.issues import issue

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Invalid(Exception):
    """One or more problems; `issues` are OperationOutcome issues."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(i["diagnostics"] for i in issues))
        self.issues = issues


def _loc_path(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += "." + ("class" if part == "class_fhir" else part)
    return path


@functools.cache
def _model_class(rtype: str) -> type[BaseModel]:
    """fhir.resources' class for a type, looked up once (the lookup costs ~4% of a write)."""
    return get_fhir_model_class(rtype)


def parse(resource: Any, root: str | None) -> tuple[BaseModel, str, str]:
    """The resource as its model, with its type and the prefix of its expressions; Invalid
    when it is not a JSON object, not a type we accept, has a bad id or a bad structure."""
    if not isinstance(resource, dict):
        raise Invalid([issue(root or "resource", "a resource must be a JSON object")])
    rtype = resource.get("resourceType")
    base = root or str(rtype)
    if rtype not in TYPES:
        raise Invalid(
            [issue(f"{base}.resourceType", f"resource type {rtype!r} is not supported here")]
        )
    if "id" in resource and not (isinstance(resource["id"], str) and ID_RE.match(resource["id"])):
        raise Invalid([issue(f"{base}.id", "id must be 1-64 letters, digits, '-' or '.'")])
    try:
        model = _model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        refused = []
        for err in exc.errors():
            where = _loc_path(base, err["loc"])
            refused.append(issue(where, f"{where}: {err['msg']}", "structure"))
        raise Invalid(refused) from None
    return model, rtype, base
