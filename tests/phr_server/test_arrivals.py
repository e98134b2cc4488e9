"""After a connector's write that changed something, the PHR server tells the consent service
whose records arrived, by (municipality, code); an unchanged re-run and a refused write tell
nothing."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

from phr_server.arrivals import ArrivalNotifier
from tests.browser import live_server
from tests.phr_server.conftest import MUNI, World, family_bundle, observation, transaction


def test_changed_patients_are_reported_after_the_commit(world: World) -> None:
    received: list[dict[str, Any]] = []
    tokens: list[str] = []
    receiver = Flask("consent_stand_in")

    @receiver.post("/api/v1/arrivals")
    def arrivals():  # type: ignore[no-untyped-def]
        tokens.append(request.headers.get("Authorization", ""))
        received.append(request.get_json())
        return {"notices": 0}

    with live_server(receiver) as url:
        notifier = ArrivalNotifier(url, lambda: "service-token")
        world.app.extensions["phr_arrivals"] = notifier
        conn = world.connector()
        assert world.post(conn, family_bundle()).status_code == 200
        notifier.drain()
        assert received == [{"municipality": MUNI, "codes": ["C1", "P1", "S1"]}]
        assert tokens == ["Bearer service-token"]

        # The same load again: nothing changed, nothing is reported.
        assert world.post(conn, family_bundle()).status_code == 200
        notifier.drain()
        assert len(received) == 1

        # One new weight of the child: only the child's code.
        child = world.get(
            "/Patient?identifier=urn:phr-platform:pseudonym:072028|C1",
            world.connector(scope="system/*.read"),
        ).get_json()["entry"][0]["resource"]["id"]
        new = transaction(observation("urn:uuid:o9", f"Patient/{child}", "w-c1-9", value=13.0))
        assert world.post(conn, new).status_code == 200
        notifier.drain()
        assert received[-1] == {"municipality": MUNI, "codes": ["C1"]}

        # A refused Bundle (invalid) reports nothing.
        bad = transaction(observation("urn:uuid:o10", f"Patient/{child}", "w-c1-10", value="x"))
        assert world.post(conn, bad).status_code == 400
        notifier.drain()
        assert len(received) == 2
    assert json.dumps(received).count("P1") == 1
