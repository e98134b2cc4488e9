"""Under the real server: several gunicorn worker processes, each with its own cache, and a
revocation made through one worker seen by the very next request in every other."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from launcher.demo import load_all
from phr_core.config import Settings
from tests.consent.conftest import Tokens
from tests.processes import stop

WORKERS = 3


@pytest.fixture
def served(migrated: Settings) -> Iterator[str]:
    load_all(migrated)
    env = {**os.environ, **migrated.environ, "PHR_WORKERS": str(WORKERS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "consent", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = migrated.urls["consent"]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the consent service did not start")
            time.sleep(0.2)
        yield base
    finally:
        stop(proc, signal.SIGTERM, timeout=20)  # and its gunicorn, in a session of its own


def _get(base: str, path: str, headers: dict[str, str]) -> requests.Response:
    # A new connection each time, so requests spread over the workers.
    return requests.get(base + path, headers={**headers, "Connection": "close"}, timeout=5)


def test_revocation_is_seen_by_every_worker_at_once(served: str, tokens: Tokens) -> None:
    base = served
    r = requests.post(
        base + "/api/v1/grants",
        json={"subject": "sub-w", "client_id": "app", "scopes": ["patient/*.rs"]},
        headers=tokens.idp,
        timeout=5,
    )
    assert r.status_code == 201
    gid = r.json()["id"]
    phr = tokens.phr
    timings = []
    for _ in range(60):  # every worker answers (and caches) "active"
        t0 = time.perf_counter()
        assert _get(base, f"/api/v1/grants/{gid}", phr).json()["status"] == "active"
        timings.append(time.perf_counter() - t0)
    health = []
    for _ in range(60):
        t0 = time.perf_counter()
        _get(base, "/healthz", {})
        health.append(time.perf_counter() - t0)
    print(
        f"\nover loopback HTTP, a new connection each: GET /grants/{{id}} median "
        f"{statistics.median(timings[10:]) * 1000:.2f} ms, GET /healthz median "
        f"{statistics.median(health) * 1000:.2f} ms"
    )

    revoked = requests.post(
        base + f"/api/v1/grants/{gid}/revoke", headers=tokens.idp, timeout=5
    ).json()
    assert revoked["status"] == "revoked"
    seen = [_get(base, f"/api/v1/grants/{gid}", phr).json()["status"] for _ in range(60)]
    assert set(seen) == {"revoked"}
