"""JSON nested 100,000 deep is a client error (400 OperationOutcome), not a RecursionError and
a 500: the body is measured before it is parsed (phr_core.bounded_json)."""

from __future__ import annotations

import pytest

from phr_core.bounded_json import MAX_DEPTH
from tests.phr_server.conftest import World

HEAD = b'{"resourceType":"Bundle","type":"transaction","entry":'
DEEP = HEAD + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(("method", "path"), [("post", "/"), ("put", "/Patient/p1")])
def test_deep_json_is_a_400_operation_outcome(world: World, method: str, path: str) -> None:
    resp = getattr(world.client, method)(
        path,
        data=DEEP,
        headers={
            "Authorization": f"Bearer {world.connector()}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "structure"
    assert f"deeper than {MAX_DEPTH} levels" in body["issue"][0]["diagnostics"]
