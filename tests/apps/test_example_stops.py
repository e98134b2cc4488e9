"""`phr dev example` stops its app with it (issue 14, item 8): stopped by SIGTERM, or by SIGINT
when it was started as a script's background job (SIGINT inherited ignored, as under `make test`
in CI), it used to exit or hang while `app.py` kept the port and the output pipe, and the apps
fixture then waited forever after every test had passed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, make_environ
from tests.launcher.test_run import PHR
from tests.processes import Lines, Tree, accepts, stop

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.slow,  # `phr dev example` started and stopped, about 30 s each
]

# `trap "" INT` ignores SIGINT, and an ignored signal stays ignored across exec: what a
# non-interactive shell does to its background jobs.
AS_BACKGROUND_JOB = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


@pytest.mark.parametrize(
    ("sig", "prefix"),
    [(signal.SIGTERM, []), (signal.SIGINT, []), (signal.SIGINT, AS_BACKGROUND_JOB)],
    ids=["sigterm", "sigint", "sigint-background-job"],
)
def test_dev_example_stops_its_app(tmp_path: Path, sig: int, prefix: list[str]) -> None:
    port = free_port()
    env = {**os.environ, **make_environ(tmp_path, "unused"), "APP_CLIENT_ID": "test-app"}
    proc = subprocess.Popen(
        [*prefix, *PHR, "dev", "example", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc, timeout=10)
            pytest.fail("the example app did not start:\n" + Lines.of(proc).rest(1))
        time.sleep(0.2)
    tree = Tree(proc.pid).add()
    assert len(tree.members) >= 2, "phr and the app it started"
    # stop() fails the test if phr does not exit within the bound or leaves a process behind.
    code, _ = stop(proc, sig, timeout=20)
    assert code == 0
    assert not accepts(port), "the app's port is still open"
    assert not tree.alive()
