"""The platform as replicas for tests: `phr dev run --replicas 2` on a fresh PostgreSQL database,
every service twice behind HAProxy (one gunicorn worker per replica), started once per module.

Outside CI a missing haproxy or PostgreSQL skips with the reason; in CI (which installs both)
it is a failure, like the browser and PostgreSQL elsewhere. The IdP's signing keys are rotated
right after the start (`phr idp rotate-keys --force`), so the test that checks both replicas
sign with the new key can run last and find the 30 s reload bound mostly spent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text

from phr_core.config import Settings, load_settings
from tests.conftest import IN_CI, _postgres_servers, make_environ
from tests.processes import Lines, stop

PHR = [sys.executable, "-m", "launcher.cli"]
START_TIMEOUT_S = 240  # migrations and demo data on PostgreSQL, then 12 gunicorn pools
TIMEOUT = 15


@dataclass
class Replicas:
    settings: Settings
    env: dict[str, str]
    front: dict[str, str]  # service pool → its public URL (HAProxy)
    direct: dict[str, list[str]]  # service pool → each replica's own URL
    engine: Engine  # the one shared database
    rotated_at: float  # time.monotonic() when the signing keys were rotated
    new_kids: list[str] = field(default_factory=list)

    def served_by(self, resp: requests.Response) -> str:
        return resp.headers.get("X-PHR-Replica", "?")


def _require(reason: str) -> None:
    if IN_CI:
        pytest.fail("CI must run the replica tests but " + reason)
    pytest.skip(reason)


def _backends(cfg: str) -> dict[str, list[str]]:
    """service pool → replica URLs, from the HAProxy configuration the launcher wrote."""
    out: dict[str, list[str]] = {}
    current = None
    for line in cfg.splitlines():
        if m := re.match(r"backend (\S+)", line):
            current = out.setdefault(m.group(1), [])
        elif (m := re.match(r"\s+server \S+ (\S+)", line)) and current is not None:
            current.append(f"http://{m.group(1)}")
    return out


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    if not (shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists()):
        _require("HAProxy is not installed (apt-get install haproxy; .ci/run installs it)")
    servers = _postgres_servers()
    if not servers:
        _require("no PostgreSQL: set PHR_TEST_DATABASE_URLS=postgresql://… (.ci/run starts one)")
    admin = create_engine(servers[0], isolation_level="AUTOCOMMIT")
    name = "phr_replicas_" + uuid.uuid4().hex[:10]
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = servers[0].rsplit("/", 1)[0] + "/" + name
    tmp = tmp_path_factory.mktemp("replicas")
    env = make_environ(tmp, url, PHR_WORKERS="1", PHR_DEV_SECOND_CITY="off")
    del env["PHR_CONSENT_API_URL"]  # the decision API's own pools, as deployed
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [*PHR, "dev", "run", "--replicas", "2"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    engine = create_engine(url)
    try:
        if Lines.of(proc).until("Press Ctrl-C to stop.", START_TIMEOUT_S) is None:
            pytest.fail("the replicas did not start:\n" + "\n".join(Lines.of(proc).seen[-60:]))
        rotated = subprocess.run(
            [*PHR, "idp", "rotate-keys", "--force"],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rotated_at = time.monotonic()
        kids = re.findall(r"[a-z]s256-\d{8}-[0-9a-f]{8}", rotated.stdout)
        settings = load_settings(full_env)
        direct = _backends((Path(env["PHR_VAR_DIR"]) / "haproxy.cfg").read_text())
        front = {n: f"http://127.0.0.1:{settings.ports[n]}" for n in ("idp", "fhir", "consent")}
        front["consent-api"] = f"http://127.0.0.1:{env['PHR_CONSENT_API_PORT']}"
        front["federation"] = f"http://127.0.0.1:{settings.ports['federation']}"
        front["connector"] = f"http://127.0.0.1:{settings.ports['connector']}"
        yield Replicas(settings, env, front, direct, engine, rotated_at, kids)
    finally:
        engine.dispose()
        try:
            stop(proc, timeout=40)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def count(r: Replicas, sql: str, **params: Any) -> int:
    with r.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())
