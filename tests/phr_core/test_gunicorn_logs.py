"""Issue 20: under gunicorn, as the runner starts a service (phr_core.gunicorn_conf), every
line is one JSON event: gunicorn's own (workers booting and stopping) and the app's access
line, with the service named and the caller's request id; and a worker that died leaves the
pool's gauges (its `livesum` file is dropped), so they sum over live workers only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from launcher.runner import Target, gunicorn_command, metrics_env
from phr_core.config import load_settings
from phr_core.services import get_service
from tests.conftest import make_environ
from tests.phr_core.test_gunicorn_refusals import _wait_ready


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_gunicorn_and_the_app_write_json_lines(tmp_path: Path) -> None:
    environ = make_environ(tmp_path, f"sqlite:///{tmp_path / 'connector.db'}")
    s = load_settings({**environ, "PHR_LOG_FORMAT": "json", "PHR_WORKERS": "2"})
    target = Target.of(get_service("connector"), s)
    pool = metrics_env(target, s)
    gauges = Path(pool["PROMETHEUS_MULTIPROC_DIR"])
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        env = {**os.environ, **s.environ, **pool}
        proc = subprocess.Popen(gunicorn_command(target, s), env=env, stdout=log, stderr=log)
        try:
            _wait_ready(proc, target.port)
            url = f"http://127.0.0.1:{target.port}/healthz?code=SECRET-CODE"
            req = urllib.request.Request(url, headers={"X-Request-ID": "follow-me-0123"})
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                assert resp.headers["X-Request-ID"] == "follow-me-0123"
            workers = _children(proc.pid)
            assert len(workers) == 2
            victim = min(workers)
            assert (gauges / f"gauge_livesum_{victim}.db").exists()
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while (gauges / f"gauge_livesum_{victim}.db").exists():
                assert time.monotonic() < deadline, "the dead worker's gauges stayed"
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = log_path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line, gunicorn's too
    assert {e["service"] for e in events} == {"connector"}
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["event"] for e in events)
    access = [e for e in events if e["logger"] == "phr.access" and e["route"] == "/healthz"]
    followed = [e for e in access if e["request_id"] == "follow-me-0123"]
    assert followed and followed[0]["query"] == "code=-" and followed[0]["status"] == 200
    assert "SECRET-CODE" not in "\n".join(lines)
