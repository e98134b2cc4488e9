"""The walk over a validated model: every model object with its place and the raw JSON at that
place, for the checks that need what the model rewrote."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

Visit = Callable[[BaseModel, str, dict[str, Any]], None]


def walk(obj: Any, path: str, raw: Any, visit: Visit) -> None:
    """Call `visit` on every model instance inside `obj` (before its children), with its
    FHIRPath-like location and the raw JSON object at that place (walked alongside, for values
    the model rewrote). Only the fields validation set are looked at (`model_fields_set`, in
    field order): the others are None, and a model has dozens of them."""
    if isinstance(obj, list):
        items = raw if isinstance(raw, list) else []
        for i, item in enumerate(obj):
            walk(item, f"{path}[{i}]", items[i] if i < len(items) else None, visit)
        return
    if not isinstance(obj, BaseModel):
        return
    here = raw if isinstance(raw, dict) else {}
    visit(obj, path, here)
    fields = json_fields_by_name(type(obj))
    given = [fields[n] for n in obj.__pydantic_fields_set__ if n in fields]
    if len(given) > 1:
        given.sort()  # field order, as the model holds them
    values = obj.__dict__
    for _, name, key in given:
        value = values[name]
        if isinstance(value, BaseModel | list):
            walk(value, f"{path}.{key}", here.get(key), visit)


@functools.cache
def json_keys(cls: type[BaseModel]) -> dict[str, str]:
    """A model class's field names → their JSON keys (aliases), in field order. Read once per
    class: `model_fields` is a property that costs more than the walk itself."""
    return {name: info.alias or name for name, info in cls.model_fields.items()}


@functools.cache
def json_fields(cls: type[BaseModel]) -> dict[str, tuple[int, str]]:
    """JSON key → (field position, field name) of a model class."""
    return {key: (i, name) for i, (name, key) in enumerate(json_keys(cls).items())}


@functools.cache
def json_fields_by_name(cls: type[BaseModel]) -> dict[str, tuple[int, str, str]]:
    """Field name → (field position, field name, JSON key), without `fhir_comments` (never
    walked)."""
    return {
        name: (i, name, key)
        for i, (name, key) in enumerate(json_keys(cls).items())
        if name != "fhir_comments"
    }
