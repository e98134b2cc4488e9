"""The JSON-type checks of validation (a string where the model wants a number or boolean, a
number where it wants a string) find exactly what the former approach found, which dumped the
whole model to JSON and compared the two trees: checked on every resource a synthetic city's
connector produces, and on copies with primitives turned into the wrong JSON type."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.transport import Outcomes, transaction
from phr_server.validation import Invalid, validate
from phr_server.validation.json_types import coercions
from tests.connectors.helpers import CITY, KEY, consents, make_city


def _reference(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """The former check: dump the model to JSON and compare with the raw tree."""
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    out: list[dict[str, Any]] = []
    coercions(resource, model.model_dump(mode="json", exclude_none=True), "R", out)
    return {(i["expression"][0], i["diagnostics"]) for i in out}


def _type_issues(resource: dict[str, Any]) -> set[tuple[str, str]]:
    try:
        validate(resource, "R")
    except Invalid as exc:
        return {
            (i["expression"][0], i["diagnostics"]) for i in exc.issues if "JSON" in i["diagnostics"]
        }
    return set()


def _mutants(node: Any) -> list[Any]:
    """Copies of `node` with one primitive given the wrong JSON type."""
    out: list[Any] = []

    def walk(obj: Any, setter) -> None:  # type: ignore[no-untyped-def]
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, lambda new, o=obj, k=k: o.__setitem__(k, new))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, lambda new, o=obj, i=i: o.__setitem__(i, new))
        elif isinstance(obj, bool):
            setter(str(obj).lower())
            out.append(copy.deepcopy(node))
            setter(obj)
        elif isinstance(obj, int | float):
            setter(str(obj))
            out.append(copy.deepcopy(node))
            setter(obj)

    walk(node, None)
    return out


class Keep:
    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []

    def send(self, entries: list[Any]) -> Outcomes:
        self.resources += [e["resource"] for e in transaction(entries)["entry"]]
        return Outcomes(created=len(entries))


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("city")
    files = make_city(tmp, n=300, months=1)
    keep = Keep()
    c = Connector(
        CITY,
        Pseudonymizer(KEY),
        consents(files["consents"]),
        keep,
        register_path=files["register"],
        report=Report(io.StringIO()),
    )
    for p in sorted(tmp.iterdir()):
        if src := detect_source(p):
            c.run_file(p, src)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in keep.resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    return [r for rs in by_type.values() for r in rs[:15]]


def test_type_checks_agree_with_the_json_dump(resources: list[dict[str, Any]]) -> None:
    assert len({r["resourceType"] for r in resources}) >= 10
    mutated = 0
    for r in resources:
        r = {k: v for k, v in r.items() if k != "id"}
        assert _type_issues(r) == _reference(r) == set()
        for m in _mutants(r):
            try:
                want = _reference(m)
            except ValidationError:  # the model refuses it outright: not a type check
                continue
            assert _type_issues(m) == want, m
            mutated += bool(want)
    assert mutated > 50  # the wrong types were there to be found
