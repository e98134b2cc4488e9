"""Security review (branch attack): a city's PHR server is another organisation's. One that
answers every page with the same `next` cursor (a bug, or hostile) kept the portal reading
forever: the child's PDF spools to a temporary file before the response starts, so the worker
and the disk were held without bound, however the browser gave up. The read must end (an
error is fine). Failed when written."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest
from flask import Flask

from portal import history_export, phr
from portal.export_facts import child_facts
from portal.federated import Reader, Source
from portal.plus_pages import Person

SERVER = "https://phr.other-city.example/fhir"
LOOP = 20_000  # 100 pages of the real page size; a finite history never repeats its cursor


class Repeating:
    """A PHR server whose every search page says there is a next page, at the same cursor."""

    def search(self, rtype: str, params: list[tuple[str, str]]) -> phr.Page:
        immunization: dict[str, Any] = {
            "resourceType": "Immunization",
            "occurrenceDateTime": "2025-03-10",
            "vaccineCode": {"text": "ヒブ"},
        }
        return phr.Page([immunization], next_cursor="again")


def test_a_server_repeating_its_cursor_does_not_keep_the_portal_reading() -> None:
    src = Source("079999", "079999", "child", "p1", SERVER)
    found = Reader("s", [src], {}, lambda server: Repeating(), home="https://home.example/fhir")  # type: ignore[arg-type, return-value]  # duck-typed server
    child = Person("p1", "child", date(2025, 1, 10), "female", (src,))
    with Flask(__name__).test_request_context():
        facts = child_facts(found, child, "ja")
        try:
            read = sum(1 for _ in itertools.islice(facts.vaccinations, LOOP))
        except (phr.Unavailable, phr.NotReachable):
            return  # refused: fine
    pytest.fail(f"still reading after {read} rows of one repeated page")


class RepeatingHistory:
    """A PHR server whose access history pages all say there is a next page, at one cursor."""

    audit_events = phr.PhrClient.audit_events  # the real request, on this search

    def search(self, rtype: str, params: list[tuple[str, str]]) -> phr.Page:
        return phr.Page([{"resourceType": "AuditEvent", "id": "a1"}], next_cursor="again")


def test_an_access_history_repeating_its_cursor_ends_with_its_missing_note() -> None:
    src = Source("079999", "079999", "self", "p1", SERVER)
    found = Reader("s", [src], {}, lambda server: RepeatingHistory(), home=SERVER)  # type: ignore[arg-type, return-value]  # duck-typed server
    with Flask(__name__).test_request_context():
        entries = list(itertools.islice(history_export.audit_entries(found), LOOP))
    assert len(entries) < LOOP
    assert b"OperationOutcome" in entries[-1]
    assert all(b"AuditEvent" in e for e in entries[:-1])
