"""One `phr dev run` for the tests that only use it (sign in, consent, read, revoke their own
grant): started once on its embedded default (one SQLite file per service under var/) with
every service under gunicorn and the second demo city, as `make run` has it, instead of once
per test. A start costs about 25 CPU-seconds (half a minute of a 2-core machine).

The tests that stop the platform themselves, or run it on another configuration, start their
own (tests/launcher/test_run.py, test_run_stops.py, test_platform_capacity.py, the replicas).
Each test that shares it works with its own person or its own app, so what one adds (a grant,
a revocation, a card enrolment, a connector's loads) is not what another checks. tests/conftest.py
sends the files that use it to one worker (SHARED_DEV_PLATFORM), so it starts once per run."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import make_environ
from tests.launcher.test_run import _read_until, _start
from tests.processes import stop


@dataclass(frozen=True)
class DevPlatform:
    env: dict[str, str]  # its ports and var/ dir, for the tests' own requests and `phr` commands


@pytest.fixture(scope="session")
def dev_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPlatform]:
    tmp_path = tmp_path_factory.mktemp("dev_platform")
    env = make_environ(tmp_path, "unused")
    del env["PHR_DATABASE_URL"]  # each service's own SQLite file, as `make run` has it
    env["PHR_CONNECTOR_INBOX"] = str(tmp_path / "inbox")
    proc = _start(env)
    try:
        _read_until(proc, "Press Ctrl-C to stop.", timeout=180)
        yield DevPlatform(env)
    finally:
        stop(proc, signal.SIGINT, timeout=60)
