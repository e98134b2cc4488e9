"""JSON types the models forgive: a string the model silently turned into a number or boolean
("62.5" for a decimal), or the other way round, is refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from phr_server.issues import issue
from phr_server.validation.walk import json_fields

NUMERIC = (bool, int, float, Decimal)  # what _json_kind keeps as a JSON number or boolean
NUMERIC_OR_LIST = (*NUMERIC, list)


def coercions(raw: Any, dumped: Any, path: str, out: list[dict[str, Any]]) -> None:
    """Where the model turned a JSON string into a number or boolean (or back)."""
    if isinstance(raw, dict) and isinstance(dumped, dict):
        for k, v in raw.items():
            if k in dumped:
                coercions(v, dumped[k], f"{path}.{k}", out)
    elif isinstance(raw, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(raw, dumped, strict=False)):
            coercions(a, b, f"{path}[{i}]", out)
    elif isinstance(raw, str) and isinstance(dumped, bool | int | float):
        kind = "boolean" if isinstance(dumped, bool) else "number"
        out.append(issue(path, f"{path} must be a JSON {kind}, not the string {raw!r}"))
    elif isinstance(raw, bool) != isinstance(dumped, bool) or (
        isinstance(raw, int | float) and isinstance(dumped, str)
    ):
        out.append(issue(path, f"{path} has the wrong JSON type"))


def primitive_types(
    obj: BaseModel, raw: dict[str, Any], path: str, out: list[dict[str, Any]]
) -> None:
    """coercions for one model object, comparing its primitive values with the raw JSON at
    the same place: the same findings as dumping the whole model and walking both trees,
    without the dump (which cost about half of validating a resource). A JSON string whose
    value is not a number or boolean is the common case and needs no comparison; findings come
    in field order."""
    fields = json_fields(type(obj))
    values = obj.__dict__
    found: list[tuple[int, list[dict[str, Any]]]] = []
    for key, given in raw.items():
        field = fields.get(key)
        if field is None:
            continue
        value = values.get(field[1])
        if value is None or isinstance(value, BaseModel):
            continue
        if type(given) is str and not isinstance(value, NUMERIC_OR_LIST):
            continue  # a string stays a string: nothing to compare
        mine: list[dict[str, Any]] = []
        if isinstance(value, list):
            items = given if isinstance(given, list) else []
            for i, (a, b) in enumerate(zip(items, value, strict=False)):
                if not isinstance(b, BaseModel):
                    coercions(a, _json_kind(b), f"{path}.{key}[{i}]", mine)
        else:
            coercions(given, _json_kind(value), f"{path}.{key}", mine)
        if mine:
            found.append((field[0], mine))
    found.sort(key=lambda f: f[0])
    for _, issues in found:
        out.extend(issues)


def _json_kind(value: Any) -> Any:
    """A primitive model value as the JSON dump would type it: booleans and numbers stay,
    everything else (dates, times, codes, Decimal-as-string forms) compares as a string."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)
