"""The walk over a validated model: every model object with its place and the raw JSON at that
place, for the checks that need what the model rewrote."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel


def walk(obj: Any, path: str, raw: Any) -> Iterator[tuple[BaseModel, str, dict[str, Any]]]:
    """Every model instance inside `obj`, with its FHIRPath-like location and the raw JSON
    object at that place (walked alongside, for values the model rewrote)."""
    if isinstance(obj, list):
        items = raw if isinstance(raw, list) else []
        for i, item in enumerate(obj):
            yield from walk(item, f"{path}[{i}]", items[i] if i < len(items) else None)
        return
    if not isinstance(obj, BaseModel):
        return
    here = raw if isinstance(raw, dict) else {}
    yield obj, path, here
    keys = json_keys(type(obj))
    for name, value in obj.__dict__.items():  # the field values, in field order
        if value is None or name == "fhir_comments" or name not in keys:
            continue
        key = keys[name]
        yield from walk(value, f"{path}.{key}", here.get(key))


@functools.cache
def json_keys(cls: type[BaseModel]) -> dict[str, str]:
    """A model class's field names → their JSON keys (aliases), in field order. Read once per
    class: `model_fields` is a property that costs more than the walk itself."""
    return {name: info.alias or name for name, info in cls.model_fields.items()}


@functools.cache
def json_fields(cls: type[BaseModel]) -> dict[str, tuple[int, str]]:
    """JSON key → (field position, field name) of a model class."""
    return {key: (i, name) for i, (name, key) in enumerate(json_keys(cls).items())}
