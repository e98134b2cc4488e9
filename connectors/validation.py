"""Structural validation of every mapped resource with the fhir.resources R4B models (types,
cardinality, patterns; not code bindings). Errors name the element, never its value."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from connectors.mapping.common import MappingError

_classes: dict[str, Any] = {}


def validate(resource: dict[str, Any]) -> None:
    rtype = resource.get("resourceType", "")
    cls = _classes.get(rtype)
    if cls is None:
        cls = _classes[rtype] = get_fhir_model_class(rtype)
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        raise MappingError(
            f"{rtype}.{loc}" if loc else rtype, f"FHIR R4 validation: {err.get('type')}"
        ) from None
