"""Concurrent conditional creates: connectors loading the same source row at the same moment
end with one resource per identifier, and every request succeeds (the loser becomes a no-op
or an update). Real concurrent requests: threads, each with its own client, against one app
and one database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from phr_core.db import Database
from phr_server.models import IdentifierClaim, StoredResource
from tests.phr_server.conftest import World, observation, patient, transaction

THREADS = 6
ROUNDS = 4


def _race(world: World, bundles: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """POST each bundle from its own thread, all released at once."""
    token = world.connector()
    start = threading.Barrier(len(bundles))
    out: list[tuple[int, Any]] = [(0, None)] * len(bundles)

    def run(i: int) -> None:
        client = world.app.test_client()
        start.wait()
        resp = client.post(
            "/",
            json=bundles[i],
            headers={"Authorization": f"Bearer {token}"},
        )
        out[i] = (resp.status_code, resp.get_json())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _rows(world: World, rtype: str) -> int:
    db = Database(world.settings.database_urls["fhir"])
    try:
        with db.session() as s:
            q = select(func.count()).select_from(StoredResource)
            return s.scalar(q.where(StoredResource.resource_type == rtype)) or 0
    finally:
        db.dispose()


def test_racing_conditional_creates_make_one_resource(world: World) -> None:
    for r in range(ROUNDS):
        code = f"RACE{r}"
        bundles = [
            transaction(
                patient("urn:uuid:p", code),
                observation("urn:uuid:o", "urn:uuid:p", f"race-{r}", value=10.0 + r),
            )
            for _ in range(THREADS)
        ]
        results = _race(world, bundles)
        assert [status for status, _ in results] == [200] * THREADS, results
        created = [e["response"]["status"] for _, body in results for e in body["entry"]].count(
            "201 Created"
        )
        assert created == 2, results  # one Patient and one Observation, by exactly one request
        locations = {
            body["entry"][0]["response"]["location"].split("/_history")[0] for _, body in results
        }
        assert len(locations) == 1  # every request names the same Patient
    assert _rows(world, "Patient") == ROUNDS
    assert _rows(world, "Observation") == ROUNDS


def test_racing_if_none_exist_creates_make_one_resource(world: World) -> None:
    token = world.connector()
    first = world.post(token, transaction(patient("urn:uuid:p", "P-INE")))
    pid = first.get_json()["entry"][0]["response"]["location"].split("/_history")[0]
    entry = observation("urn:uuid:o", pid, "ine-1")
    system = entry["resource"]["identifier"][0]["system"]
    entry["request"] = {
        "method": "POST",
        "url": "Observation",
        "ifNoneExist": f"identifier={system}|ine-1",
    }
    results = _race(world, [transaction(entry) for _ in range(THREADS)])
    assert [status for status, _ in results] == [200] * THREADS, results
    statuses = sorted(body["entry"][0]["response"]["status"] for _, body in results)
    assert statuses == ["200 OK"] * (THREADS - 1) + ["201 Created"]
    assert _rows(world, "Observation") == 1


def test_a_bundle_creating_one_identifier_twice_is_rejected(world: World) -> None:
    resp = world.post(
        world.connector(),
        transaction(patient("urn:uuid:a", "TWICE"), patient("urn:uuid:b", "TWICE")),
    )
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["Bundle.entry[1].request"]


def test_a_stale_claim_is_taken_over(world: World) -> None:
    """After an update drops the identifier, a new conditional create of it makes a new
    resource instead of failing on the old claim."""
    token = world.connector()
    first = world.post(token, transaction(patient("urn:uuid:p", "STALE"))).get_json()
    pid = first["entry"][0]["response"]["location"].split("/_history")[0]
    made = world.post(token, transaction(observation("urn:uuid:o", pid, "old-key"))).get_json()
    old = made["entry"][0]["response"]["location"].split("/_history")[0]
    moved = observation("urn:uuid:o", pid, "new-key")
    moved["request"] = {"method": "PUT", "url": old}
    assert world.post(token, transaction(moved)).status_code == 200
    again = world.post(token, transaction(observation("urn:uuid:o", pid, "old-key"))).get_json()
    entry = again["entry"][0]["response"]
    assert entry["status"] == "201 Created" and not entry["location"].startswith(old)
    system = moved["resource"]["identifier"][0]["system"]
    db = Database(world.settings.database_urls["fhir"])
    try:
        with db.session() as s:
            owner = s.scalar(
                select(IdentifierClaim.resource_id).where(
                    IdentifierClaim.system == system, IdentifierClaim.value == "old-key"
                )
            )
    finally:
        db.dispose()
    assert entry["location"].startswith(f"Observation/{owner}/")
