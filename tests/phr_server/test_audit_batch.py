"""Durable AuditEvents of reads (phr_server/audit_batch.py): a read's event is committed before
its response leaves (so a `kill -9` right after loses none), concurrent reads share commits,
a failed commit answers 503 and releases nothing, and the trail is read without waiting."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text

from phr_core.config import load_settings
from phr_core.db import Database
from phr_server import audit_batch
from phr_server.audit_batch import AuditBatch
from phr_server.models import StoredResource
from tests.phr_server.conftest import World, stand_in

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


def touched(events: list[dict[str, Any]]) -> set[str]:
    return {x["what"]["reference"] for e in events for x in e.get("entity", []) if "what" in x}


def test_a_reads_event_is_stored_before_its_response_leaves(
    world: World, family: dict[str, str]
) -> None:
    child = world.user("sub-child", codes=CHILD)
    before = stored_events(world)
    for n, key in enumerate(("o3", "o4", "i1"), start=1):
        assert world.get(world.path(family[f"urn:uuid:{key}"]), child).status_code == 200
        assert stored_events(world) == before + n  # committed by the time the answer came
    assert {world.ref(family[f"urn:uuid:{k}"]) for k in ("o3", "o4")} <= touched(
        read_events(world, child)
    )


def test_the_trail_shows_every_access_made_before_it_through_any_worker(
    world: World, family: dict[str, str], app_factory: Any
) -> None:
    """Two workers of one server (two apps on one database): an app reads through one, the
    person's access history is asked of the other at once and shows those reads."""
    other_app = app_factory("fhir")
    other_app.extensions["phr_consent"] = world.consent
    other = World(other_app, world.settings, world.issuer, world.consent)
    parent = world.user("sub-parent", codes=[("P1", "self"), ("C1", "child")])
    for key in ("o1", "o3"):
        assert world.get(world.path(family[f"urn:uuid:{key}"]), parent).status_code == 200
    assert (
        world.get("/Observation?patient=" + world.ref(family["urn:uuid:c1"]), parent).status_code
        == 200
    )
    assert {world.ref(family[f"urn:uuid:{k}"]) for k in ("o1", "o3")} <= touched(
        read_events(other, parent)
    )
    searches = other.get("/AuditEvent?subtype=search-type", parent).get_json()
    assert searches["entry"], "the search's event is there too"


@contextmanager
def write_lock_held(db: Database) -> Iterator[None]:
    """Another transaction holds the lock AuditEvent inserts need (PostgreSQL: a table lock
    that conflicts with INSERT; SQLite: the database's write lock) until the block ends."""
    with db.engine.connect() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("LOCK TABLE fhir_resource IN SHARE MODE"))
        else:
            c.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            c.rollback()


def wait_for(condition: Any, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_reads_arriving_during_a_commit_are_committed_together_next(
    world: World, family: dict[str, str]
) -> None:
    """No fixed delay: a lone read commits at once; reads that arrive while a commit runs wait
    for it and then go in one commit together (the batch grows with the load)."""
    batch: AuditBatch = world.app.extensions["phr_audit"]
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    before, commits = stored_events(world), batch.commits
    assert world.get(ref, child).status_code == 200
    assert batch.commits == commits + 1
    statuses: list[int] = []

    def read() -> None:
        statuses.append(world.get(ref, child).status_code)

    with write_lock_held(world.app.extensions["phr_db"]):
        first = threading.Thread(target=read)
        first.start()  # its commit starts and waits for the lock
        wait_for(lambda: batch._committing, "the first read's commit did not start")
        rest = [threading.Thread(target=read) for _ in range(5)]
        for t in rest:
            t.start()
        wait_for(lambda: batch.queued == 5, "the other reads did not queue behind it")
        assert statuses == [], "no response before its AuditEvent is committed"
    for t in [first, *rest]:
        t.join(60)
    assert statuses == [200] * 6
    assert batch.commits == commits + 3  # the lone read, the first one, the five together
    assert stored_events(world) == before + 7


def test_concurrent_reads_find_their_events_committed_when_answered(
    world: World, family: dict[str, str]
) -> None:
    """Eight threads of one worker (as gunicorn's gthread runs them) reading at once: whenever
    a response has arrived, its AuditEvent is in the database."""
    child = world.user("sub-child", codes=CHILD)
    refs = [world.path(family[f"urn:uuid:{k}"]) for k in ("o3", "o4", "i1")]
    before = stored_events(world)
    answered = 0
    lock = threading.Lock()
    problems: list[str] = []

    def reader(n: int) -> None:
        nonlocal answered
        for i in range(6):
            r = world.get(refs[(n + i) % len(refs)], child)
            if r.status_code != 200:
                problems.append(f"status {r.status_code}")
            with lock:
                answered += 1
                seen = answered
            stored = stored_events(world) - before
            if stored < seen:
                problems.append(f"{seen} answered, {stored} stored")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert problems == []
    assert stored_events(world) == before + 48


def test_a_failed_commit_answers_503_and_releases_nothing(
    world: World, family: dict[str, str]
) -> None:
    good: AuditBatch = world.app.extensions["phr_audit"]
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    served = world.get(ref, child)
    assert served.status_code == 200
    before = stored_events(world)
    broken = AuditBatch(Database("postgresql+psycopg://nobody@127.0.0.1:9/none"), good.repo)
    world.app.extensions["phr_audit"] = broken
    try:
        for path in (
            ref,
            "/Observation?patient=" + world.ref(family["urn:uuid:c1"]),
            "/AuditEvent",
        ):
            refused = world.get(path, child)
            assert refused.status_code == 503, path
            body = refused.get_json()
            assert body["resourceType"] == "OperationOutcome"
            assert body["issue"][0]["code"] == "transient"
            assert "access log" in body["issue"][0]["diagnostics"]
            assert world.ref(family["urn:uuid:o3"]).split("/")[1] not in refused.get_data(
                as_text=True
            )
            assert str(served.get_json()["valueQuantity"]["value"]) not in refused.text
    finally:
        world.app.extensions["phr_audit"] = good
        broken.close()
    assert stored_events(world) == before  # nothing stored, nothing held back for later
    assert world.get(ref, child).status_code == 200  # the database is back: served again


@contextmanager
def silent_database() -> Iterator[tuple[str, threading.Event, Any]]:
    """A TCP listener that accepts connections and never answers (a database that hangs)
    until the block ends: yields its URL, an event set once a connection came, and a
    function that drops the connections (the database fails)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    came = threading.Event()

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            came.set()

    def drop() -> None:
        for c in accepted:
            c.close()

    threading.Thread(target=accept, daemon=True).start()
    url = f"postgresql+psycopg://nobody@127.0.0.1:{server.getsockname()[1]}/none"
    try:
        yield url, came, drop
    finally:
        server.close()
        drop()


def test_the_trail_is_read_without_waiting_for_other_workers(
    world: World, family: dict[str, str], app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker's audit commit hangs (its database does not answer). The read it serves
    waits for it and is not answered; meanwhile the person's access history, read through
    this worker, answers (it waits for nothing of the other worker's) and shows the access
    made here just before. When the other worker's commit fails, its read answers 503."""
    monkeypatch.setattr(audit_batch, "CONNECT_TIMEOUT_S", 300)  # the hang outlasts the test
    other_app = app_factory("fhir")
    other_app.extensions["phr_consent"] = world.consent
    other = World(other_app, world.settings, world.issuer, world.consent)
    parent = world.user("sub-parent", codes=[("P1", "self"), ("C1", "child")])
    assert other.get(world.path(family["urn:uuid:o1"]), parent).status_code == 200  # warm
    answers: list[Any] = []
    with silent_database() as (url, came, drop):
        stuck = AuditBatch(Database(url), world.app.extensions["phr_audit"].repo)
        other_app.extensions["phr_audit"] = stuck
        try:
            blocked = threading.Thread(
                target=lambda: answers.append(other.get(world.path(family["urn:uuid:o4"]), parent))
            )
            blocked.start()
            assert came.wait(60), "the other worker's commit did not start"
            assert world.get(world.path(family["urn:uuid:o3"]), parent).status_code == 200
            trail = world.get("/AuditEvent?subtype=read", parent)
            assert trail.status_code == 200
            seen = touched([e["resource"] for e in trail.get_json()["entry"]])
            assert world.ref(family["urn:uuid:o3"]) in seen  # answered just before: in the trail
            assert world.ref(family["urn:uuid:o4"]) not in seen  # not answered: not released either
            assert blocked.is_alive() and answers == [], "the other read was answered"
            drop()  # the other worker's database fails
            blocked.join(60)
        finally:
            drop()
            stuck.close()
    (answer,) = answers
    assert answer.status_code == 503
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def sqlite_reads(
    world: World, family: dict[str, str], db_backend: str
) -> tuple[AuditBatch, str, str]:
    """SQLite only: the app's batch, a child's token and one of its records, read once."""
    if db_backend != "sqlite":
        pytest.skip("PostgreSQL commits need no lock of ours")
    batch: AuditBatch = world.app.extensions["phr_audit"]
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    assert world.get(ref, child).status_code == 200
    return batch, child, ref


def test_on_sqlite_a_commit_waits_its_turn_behind_another_processs(
    world: World, family: dict[str, str], db_backend: str
) -> None:
    """SQLite: the server processes of one database commit in turn under a file lock beside
    it (woken by the kernel, not by SQLite's sleeping busy handler). While another holds the
    lock, a read's commit waits and the read is not answered; once it is let go, it is."""
    batch, child, ref = sqlite_reads(world, family, db_backend)
    before = stored_events(world)
    assert batch.lock_path == world.settings.database_urls["fhir"].split("///")[1] + "-audit.lock"
    answers: list[int] = []
    other = os.open(batch.lock_path, os.O_RDWR)  # another process's turn (its own open file)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        reader = threading.Thread(target=lambda: answers.append(world.get(ref, child).status_code))
        reader.start()
        wait_for(lambda: batch._committing, "the read's commit did not start")
        time.sleep(0.3)
        assert answers == [] and stored_events(world) == before, "committed out of turn"
        fcntl.flock(other, fcntl.LOCK_UN)
        reader.join(60)
    finally:
        os.close(other)
    assert answers == [200]
    assert stored_events(world) == before + 1


def test_on_sqlite_reads_arriving_while_a_commit_waits_its_turn_go_in_with_it(
    world: World, family: dict[str, str], db_backend: str
) -> None:
    """SQLite: a commit waiting for another process's turn keeps its batch open, so the reads
    that arrive meanwhile are committed with it, in one transaction, when the turn comes (the
    batches grow with the wait, instead of queueing for a second commit)."""
    batch, child, ref = sqlite_reads(world, family, db_backend)
    before, commits = stored_events(world), batch.commits
    statuses: list[int] = []

    def read() -> None:
        statuses.append(world.get(ref, child).status_code)

    other = os.open(batch.lock_path or "", os.O_RDWR)  # another process's turn
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        readers = [threading.Thread(target=read)]
        readers[0].start()
        wait_for(lambda: batch._committing, "the first read's commit did not start")
        readers += [threading.Thread(target=read) for _ in range(5)]
        for t in readers[1:]:
            t.start()
        wait_for(lambda: batch.queued == 6, "the other reads did not join the waiting batch")
        assert statuses == [] and stored_events(world) == before
        fcntl.flock(other, fcntl.LOCK_UN)
        for t in readers:
            t.join(60)
    finally:
        os.close(other)
    assert statuses == [200] * 6
    assert batch.commits == commits + 1  # all six in the one commit
    assert stored_events(world) == before + 6


def wal_frames(world: World) -> int:
    """Frames the SQLite WAL file has room for (it grows, and is reused from its start)."""
    path = world.settings.database_urls["fhir"].split("///")[1] + "-wal"
    return max(os.path.getsize(path) - 32, 0) // (4096 + 24)


def test_on_sqlite_reads_never_wait_for_a_checkpoint_and_the_wal_stays_bounded(
    world: World, family: dict[str, str], db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: no read's commit checkpoints the WAL (its fsyncs would hold every worker's
    commits): with the process's checkpointer held up, reads go on being answered past
    SQLite's own mark of 1,000 pages. Let go, it checkpoints; once the WAL holds
    RESTART_FRAMES it checkpoints in the commits' turn, after which the file starts over."""
    if db_backend != "sqlite":
        pytest.skip("PostgreSQL checkpoints on its own")
    monkeypatch.setattr(audit_batch, "CHECKPOINT_EVERY", 4)
    monkeypatch.setattr(audit_batch, "RESTART_FRAMES", 1000)
    batch: AuditBatch = world.app.extensions["phr_audit"]
    assert batch.checkpointer is not None
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    go = threading.Event()
    checkpoint = audit_batch._Checkpointer._checkpoint

    def held_up(self: Any) -> int:
        go.wait(60)
        return checkpoint(self)

    monkeypatch.setattr(audit_batch._Checkpointer, "_checkpoint", held_up)
    assert world.get(ref, child).status_code == 200
    with world.app.extensions["phr_db"].engine.connect() as c:  # an empty WAL file to start
        assert c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0] == 0
    assert wal_frames(world) == 0
    before = stored_events(world)
    reads = 0
    while wal_frames(world) <= 1100:  # past SQLite's automatic mark, and past RESTART_FRAMES
        assert world.get(ref, child).status_code == 200
        reads += 1
        assert reads < 400, "the WAL does not grow"
    assert stored_events(world) == before + reads
    assert batch.checkpointer.checkpoints == 0
    grown = wal_frames(world)
    go.set()
    wait_for(lambda: batch.checkpointer.restarts >= 1, "no checkpoint in the commits' turn")
    for _ in range(reads):  # as many reads again: the WAL file is reused, it does not grow
        assert world.get(ref, child).status_code == 200
    assert wal_frames(world) <= grown * 1.2
    assert stored_events(world) == before + 2 * reads


def test_a_dropped_audit_connection_fails_one_commit_and_is_replaced(
    world: World, family: dict[str, str], db_backend: str
) -> None:
    """PostgreSQL: the process's audit connection is held between commits. If the database
    drops it (a restart, a failover), the next read answers 503 and releases nothing, as a
    pool without pre-ping would; the commit after opens a new connection and is served."""
    if db_backend != "postgresql":
        pytest.skip("SQLite has no server to drop the connection")
    batch: AuditBatch = world.app.extensions["phr_audit"]
    child = world.user("sub-child", codes=CHILD)
    ref = world.path(family["urn:uuid:o3"])
    for _ in range(2):  # the first commit (which may make the data key) runs in a Session
        assert world.get(ref, child).status_code == 200
    assert batch._conn is not None
    pid = batch._conn.driver_connection.info.backend_pid
    with world.app.extensions["phr_db"].engine.connect() as c:
        c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        c.commit()
    before = stored_events(world)
    assert world.get(ref, child).status_code == 503
    assert stored_events(world) == before
    assert world.get(ref, child).status_code == 200
    assert stored_events(world) == before + 1
    assert batch._conn.driver_connection.info.backend_pid != pid


# --- under gunicorn, killed -----------------------------------------------------------------


def test_reads_answered_just_before_a_kill_9_are_audited(
    world: World, family: dict[str, str]
) -> None:
    """The PHR server under gunicorn (two gthread workers of four threads, as `phr fhir
    serve` runs it): three reads at once, then SIGKILL to the master and every worker as soon
    as the answers are in. The database holds the three reads' AuditEvents."""
    with stand_in(world) as url:
        env = {
            **os.environ,
            **world.settings.environ,
            "PHR_ISSUER": url,
            "PHR_CONSENT_URL": url,
            "PHR_LOG_LEVEL": "WARNING",
        }
        settings = load_settings(env)
        base = settings.urls["fhir"]
        cmd = [
            *(sys.executable, "-m", "gunicorn", "--workers", "2"),
            *("--worker-class", "gthread", "--threads", "4"),
            *("--bind", f"127.0.0.1:{settings.ports['fhir']}", "--log-level", "warning"),
            "phr_server.app:create_app()",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
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
            gid = next(iter(world.consent.grants))
            claims = {"sub": "sub-child", "client_id": "app-1", "scope": "patient/*.rs"}
            child = world.token({**claims, "grant_id": gid}, iss=url)
            refs = [world.ref(family[f"urn:uuid:{k}"]) for k in ("o3", "o4", "i1")]
            before = stored_events(world)
            answers: dict[str, int] = {}

            def read(ref: str) -> None:
                r = requests.get(
                    f"{base}/{ref}", headers={"Authorization": f"Bearer {child}"}, timeout=30
                )
                answers[ref] = r.status_code

            threads = [threading.Thread(target=read, args=(ref,)) for ref in refs]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            os.killpg(proc.pid, signal.SIGKILL)  # master and workers, no chance to clean up
            proc.wait(30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        assert answers == {ref: 200 for ref in refs}
    assert stored_events(world) == before + 3
    # and they are the person's record of those three reads
    trail = read_events(world, world.user("sub-child", codes=CHILD))
    assert set(refs) <= touched(trail)
