"""Batched AuditEvents (phr_server/audit_batch.py): a read's event is stored within the flush
delay, reading the trail stores the queue first, an unwritable trail refuses reads instead of
serving them unaudited, nothing queued is lost, and a worker that stops stores its queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask, jsonify
from sqlalchemy import func, select

from phr_core.config import ConfigError, load_settings
from phr_core.db import Database
from phr_core.pairwise_ids import CLAIM, encode_key
from phr_server.audit_batch import AuditBatch
from phr_server.models import StoredResource
from tests.browser import live_server
from tests.phr_server.conftest import World, sector_key

CHILD = [("C1", "self")]


def stored_events(world: World) -> int:
    with world.app.extensions["phr_db"].session() as s:
        return s.scalar(
            select(func.count())
            .select_from(StoredResource)
            .where(StoredResource.resource_type == "AuditEvent")
        )


def read_events(world: World, token: str) -> list[dict[str, Any]]:
    bundle = world.get("/AuditEvent?subtype=read", token).get_json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_a_reads_event_is_stored_within_the_delay_and_the_person_finds_it(
    world: World, family: dict[str, str]
) -> None:
    batch: AuditBatch = world.app.extensions["phr_audit"]
    batch.delay = 0.5
    child = world.user("sub-child", codes=CHILD)
    before = stored_events(world)
    t0 = time.monotonic()
    assert world.get(world.path(family["urn:uuid:o3"]), child).status_code == 200
    assert stored_events(world) == before  # queued, not yet written
    while stored_events(world) == before:
        assert time.monotonic() - t0 < batch.delay + 2, "not stored within the delay"
        time.sleep(0.05)
    assert stored_events(world) == before + 1
    (event,) = read_events(world, child)
    what = {x["what"]["reference"] for x in event["entity"] if "what" in x}
    assert world.ref(family["urn:uuid:o3"]) in what


def test_the_trail_shows_every_access_made_before_it_through_any_worker(
    world: World, family: dict[str, str], app_factory: Callable[[str], Flask]
) -> None:
    """Two workers of one server (two apps on one database): an app reads through one, the
    person's access history is asked of the other at once and still shows those reads."""
    one: AuditBatch = world.app.extensions["phr_audit"]
    other_app = app_factory("fhir")
    other_app.extensions["phr_consent"] = world.consent
    other = World(other_app, world.settings, world.issuer, world.consent)
    for batch in (one, other_app.extensions["phr_audit"]):
        batch.delay = 0.5
    parent = world.user("sub-parent", codes=[("P1", "self"), ("C1", "child")])
    before = stored_events(world)
    for key in ("o1", "o3"):
        assert world.get(world.path(family[f"urn:uuid:{key}"]), parent).status_code == 200
    by_patient = "/Observation?patient=" + world.ref(family["urn:uuid:c1"])
    assert world.get(by_patient, parent).status_code == 200
    assert stored_events(world) == before, "still queued in the first worker"
    reads = read_events(other, parent)
    touched = {x["what"]["reference"] for e in reads for x in e["entity"] if "what" in x}
    assert {world.ref(family["urn:uuid:o1"]), world.ref(family["urn:uuid:o3"])} <= touched
    searches = other.get("/AuditEvent?subtype=search-type", parent).get_json()
    assert searches["entry"], "the search's event is there too"


def test_an_unwritable_trail_refuses_reads_and_loses_nothing(
    world: World, family: dict[str, str]
) -> None:
    good: AuditBatch = world.app.extensions["phr_audit"]
    broken = AuditBatch(
        Database("postgresql+psycopg://nobody@127.0.0.1:9/none"),
        good.repo,
        delay=60,
        max_pending=2,
    )
    world.app.extensions["phr_audit"] = broken
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    assert world.get(ref, child).status_code == 200
    assert world.get(ref, child).status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - the driver's connection error
        broken.flush()
    assert broken.pending == 2  # kept for the next attempt
    refused = world.get(ref, child)
    assert refused.status_code == 503
    body = refused.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "transient"
    # nor is the trail shown without them
    assert world.get("/AuditEvent?subtype=read", child).status_code == 503
    # the database is back: the two reads that were served are stored, the refused one not
    broken.db = good.db
    assert broken.flush() == 2
    world.app.extensions["phr_audit"] = good
    reads = read_events(world, child)
    assert len(reads) == 2


def test_flush_delay_zero_stores_each_event_in_its_request(
    world: World, family: dict[str, str]
) -> None:
    world.app.extensions["phr_audit"].delay = 0
    child = world.user("sub-child", codes=CHILD)
    before = stored_events(world)
    assert world.get(world.path(family["urn:uuid:o3"]), child).status_code == 200
    assert stored_events(world) == before + 1


def test_flush_delay_setting_is_bounded(world: World) -> None:
    from phr_server.app import _audit_flush_s

    env = dict(world.settings.environ)
    assert _audit_flush_s(load_settings(env)) == 0.2
    assert _audit_flush_s(load_settings(dict(env, PHR_FHIR_AUDIT_FLUSH_MS="0"))) == 0
    for bad in ("1001", "-1", "0.5", "soon"):
        with pytest.raises(ConfigError, match="PHR_FHIR_AUDIT_FLUSH_MS"):
            _audit_flush_s(load_settings(dict(env, PHR_FHIR_AUDIT_FLUSH_MS=bad)))


def test_a_gunicorn_worker_stores_its_queue_when_it_stops(
    world: World, family: dict[str, str]
) -> None:
    """Under the production server: events still queued when gunicorn is told to stop
    (SIGTERM, a deploy or scale-down) are stored before the worker exits."""
    consent = world.consent
    standin = Flask("idp_and_consent_stand_in")

    @standin.get("/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return jsonify(world.issuer.jwks())

    @standin.post("/token")
    def token():  # type: ignore[no-untyped-def]
        return jsonify(access_token="service-token", token_type="Bearer", expires_in=3600)

    @standin.get("/api/v1/grants/<gid>")
    def grant(gid: str):  # type: ignore[no-untyped-def]
        g = consent.grants[gid]
        return jsonify(
            id=g.id, status=g.status, subject=g.subject, client_id=g.client_id, scopes=g.scopes
        )

    @standin.get("/api/v1/subjects/<sub>/patients")
    def patients(sub: str):  # type: ignore[no-untyped-def]
        links = consent.links.get(sub, [])
        return jsonify(patients=[{"municipality": p.municipality, "code": p.code} for p in links])

    with live_server(standin) as url:
        env = {
            **os.environ,
            **world.settings.environ,
            "PHR_ISSUER": url,
            "PHR_CONSENT_URL": url,
            "PHR_WORKERS": "1",
            "PHR_FHIR_AUDIT_FLUSH_MS": "1000",
            "PHR_LOG_LEVEL": "WARNING",
        }
        base = load_settings(env).urls["fhir"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "phr_core.cli", "fhir", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(base + "/readyz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "did not start"
                time.sleep(0.2)
            world.user("sub-child", codes=CHILD)  # the grant and the link
            gid = next(iter(consent.grants))
            claims = {"sub": "sub-child", "client_id": "app-1", "scope": "patient/*.rs"}
            claims[CLAIM] = encode_key(sector_key("app-1"))
            child = world.token({**claims, "grant_id": gid}, iss=url)
            before = stored_events(world)
            r = requests.get(
                base + world.path(family["urn:uuid:o3"]),
                headers={"Authorization": f"Bearer {child}"},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            assert stored_events(world) == before, "stored before the stop: nothing shown"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert stored_events(world) == before + 1
