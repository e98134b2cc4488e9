"""Issue 20: the audit backlog an operator can alert on (`phr_audit_backlog_events`): the
AuditEvents waiting while the running group commit (phr_server.audit_batch) finishes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from phr_core.db import Database
from phr_server.audit_batch import AuditBatch


def _backlog() -> float:
    return REGISTRY.get_sample_value("phr_audit_backlog_events") or 0.0


def test_events_waiting_for_the_running_commit_are_the_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fhir.db'}")
    batch = AuditBatch(db, repo=None)  # type: ignore[arg-type]  # the store below needs none
    release, storing = threading.Event(), threading.Event()

    def slow_store(events: list[tuple[dict[str, Any], Any]]) -> None:
        storing.set()
        assert release.wait(10)  # a database that takes its time

    monkeypatch.setattr(batch, "_store", slow_store)
    first = threading.Thread(target=batch.commit, args=([{"n": 0}],))
    first.start()
    assert storing.wait(10)
    waiting = [threading.Thread(target=batch.commit, args=([{"n": i}],)) for i in (1, 2, 3)]
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 10
    while batch.queued < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert _backlog() == 3
    finally:
        release.set()
        for t in (first, *waiting):
            t.join(10)
        batch.close()
        db.dispose()
    assert _backlog() == 0
