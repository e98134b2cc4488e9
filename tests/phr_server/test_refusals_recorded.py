"""What the validation at the door refuses, and how it says so, stays as recorded: 270 bad
variants of the resources the connectors send (a string where a number goes and back, empty and
padded values, unknown elements, nulls in lists, wrong reference targets, missing elements,
impossible dates, twelve-digit numbers, unknown codes), each with the OperationOutcome issues
the server gave before the write path was made faster (refusals.json, recorded with the code of
main at b4bb063). A faster validator must refuse exactly these, with the same diagnostics and
expressions, in the same order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phr_server import personal_data
from phr_server.validation import Invalid, validate
from tests.phr_server.conftest import World

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).with_name("refusals.json")).read_text(encoding="utf-8")
)
ROOT = "Bundle.entry[0].resource"


def _issues(resource: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        validate(resource, ROOT, lambda urn: None)  # a one-entry Bundle: no urn:uuid resolves
    except Invalid as exc:
        return exc.issues
    return []


def test_the_validation_refuses_every_recorded_case_as_recorded() -> None:
    assert sum(1 for c in CASES if c["issues"]) > 200  # most variants are refused
    for n, case in enumerate(CASES):
        resource = case["resource"]
        assert _issues(resource) == case["issues"], (n, case["mutation"])
        assert personal_data.problems(resource, ROOT) == case["personal_data"], n


def test_a_transaction_answers_the_recorded_operation_outcome(world: World) -> None:
    """Through the HTTP door, on both databases: a one-entry transaction of each kind of bad
    variant answers 400 with the recorded issues (the personal-data door's first)."""
    token = world.connector()
    picked: dict[str, dict[str, Any]] = {}
    for case in CASES:
        if case["issues"]:
            picked.setdefault(case["mutation"], case)
    assert len(picked) >= 10
    for mutation, case in picked.items():
        res = case["resource"]
        entry = {"resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        resp = world.post(token, bundle)
        assert resp.status_code == 400, mutation
        assert resp.get_json()["issue"] == case["personal_data"] + case["issues"], mutation


@pytest.mark.parametrize("case", [c for c in CASES if not c["issues"]][:3])
def test_variants_that_stay_valid_still_pass(case: dict[str, Any]) -> None:
    assert _issues(case["resource"]) == []
