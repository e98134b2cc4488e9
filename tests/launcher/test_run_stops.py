"""Ctrl-C and SIGTERM always stop `phr dev run` (issue 23), whenever they come: during start-up,
while the servers boot, while requests are in flight, once or several times. Each time the
process exits within a bound and leaves no process and no open port behind.

The signal handler used to call threading.Event.set on the main thread, which could be inside
Event.wait holding the same lock: the runner then hung, one stop in two. One prepared var/ dir
(copied once per lane) serves every run, so a start-up does not make keys and demo data again.
Two lanes stop their own `phr dev run`s side by side (their own ports and var/ dirs): the same
runs in half the time, each while another platform starts or stops on the machine, as on a busy
CI machine. The moments are random; the seed is in every failure message (PHR_STOPS_SEED=<seed>
replays a run's moments)."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.runner import STOP_TIMEOUT_S
from launcher.supervisor import REAP_TIMEOUT_S
from tests.conftest import make_environ
from tests.launcher.test_run import PHR
from tests.processes import Lines, Stat, Tree, accepts, describe, with_environ

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.slow,  # starts `phr dev run` again and again (minutes)
]

# A stop may take the runner's grace time, then SIGKILL and reaping; some slack for a busy CI.
STOP_BOUND_S = STOP_TIMEOUT_S + REAP_TIMEOUT_S + 10
FORCED_BOUND_S = REAP_TIMEOUT_S + 5  # after a second signal: no grace time any more
START_BOUND_S = 150

# When the first signal comes: how many runs of each kind (20 stops in all, plus the first,
# clean run that prepares var/). "early": while phr migrates and loads demo data; "booting":
# while the gunicorn masters import and bind; "serving": with requests in flight.
KINDS = {"early": 9, "booting": 6, "serving": 5}
# What is sent: one signal; a second one a little later (it forces the stop); a burst of four.
PATTERNS = {"once": 10, "twice": 6, "burst": 4}
LANES = 2  # runs at the same time, each lane with its own ports and var/ dir
# After the first run, which serves everything: without the second demo city, whose PHR server
# and connector are two more gunicorn groups of services already in the run (the supervisor
# stops a list of groups the same way whatever its length); a fifth less to start each time.
TRIALS_ENV = {"PHR_DEV_SECOND_CITY": "off"}


@dataclass
class Run:
    kind: str
    signals: list[str]
    seconds: float  # from the first signal to the exit


def _ports(env: dict[str, str]) -> list[int]:
    ports = [int(v) for k, v in env.items() if k.endswith("_PORT")]
    return [*ports, int(env["PHR_CARD_AUTHORITY_URL"].rsplit(":", 1)[1])]


class _Watch:
    """Records the run's process tree every 0.1 s until stopped: a gunicorn master started
    just before the signal is seen too."""

    def __init__(self, pid: int) -> None:
        self.tree = Tree(pid).add()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(0.1):
            self.tree.add()

    def stop(self) -> Tree:
        self._done.set()
        self._thread.join(5)
        return self.tree


class _Load:
    """Requests in flight: a few threads fetching the services' pages until told to stop."""

    def __init__(self, ports: list[int]) -> None:
        self._urls = [f"http://127.0.0.1:{p}/{path}" for p in ports for path in ("", "readyz")]
        self._done = threading.Event()
        self.answered = 0
        self._threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(4)]
        for t in self._threads:
            t.start()

    def _loop(self, i: int) -> None:
        n = i
        while not self._done.is_set():
            url = self._urls[n % len(self._urls)]
            n += 1
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
                    resp.read()
                self.answered += 1
            except (urllib.error.URLError, http.client.HTTPException, OSError):
                time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()
        for t in self._threads:
            t.join(10)


def _takes_sigint(pid: int, bound_s: float) -> bool:
    """Wait until the process no longer ignores SIGINT. When the tests run as a script's
    background job (CI), phr inherits SIGINT ignored and takes it back on importing the
    launcher (launcher.take_back_ctrl_c); before that, in the interpreter's own start-up, no
    program can see a SIGINT. "Early" moments count from there."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True  # it has exited: nothing left to wait for
        ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
        if not int(ignored.split()[1], 16) & (1 << (signal.SIGINT - 1)):
            return True
        time.sleep(0.01)
    return False


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PHR, "dev", "run", *args],
        env={**os.environ, **env, "PHR_WORKERS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _marked(env: dict[str, str]) -> list[Stat]:
    """Live processes of this run, wherever they were re-parented: phr has the var/ dir as
    given, the servers as the runner resolved it."""
    var = env["PHR_VAR_DIR"]
    return with_environ("PHR_VAR_DIR", var) + with_environ("PHR_VAR_DIR", str(Path(var).resolve()))


def _kill_all(env: dict[str, str], tree: Tree | None) -> None:
    """After a failure: nothing of this run may survive the test."""
    if tree is not None:
        tree.add().kill()
    for s in _marked(env):
        with contextlib.suppress(ProcessLookupError):
            os.kill(s.pid, signal.SIGKILL)


def _stop_once(env: dict[str, str], kind: str, pattern: str, rng: random.Random, where: str) -> Run:
    """Start phr dev run, signal it at a random moment of `kind`, and check the stop."""
    proc = _start(env, *(() if kind == "early" else ("--no-demo",)))
    out = Lines.of(proc)
    watch = _Watch(proc.pid)
    load: _Load | None = None
    tree: Tree | None = None
    try:
        if kind == "early":
            if not _takes_sigint(proc.pid, START_BOUND_S):
                pytest.fail(f"{where}: SIGINT still ignored:\n" + "\n".join(out.seen))
            time.sleep(rng.uniform(0.2, 5.0))
        elif kind == "booting":
            # The runner has started the masters when the first gunicorn line appears.
            if out.until("Starting gunicorn", START_BOUND_S) is None:
                pytest.fail(f"{where}: the servers never started:\n" + "\n".join(out.seen))
            time.sleep(rng.uniform(0.0, 3.0))
        else:
            if out.until("Press Ctrl-C to stop.", START_BOUND_S) is None:
                pytest.fail(f"{where}: never ready:\n" + "\n".join(out.seen))
            load = _Load(_ports(env))
            time.sleep(rng.uniform(0.3, 1.5))
        count = {"once": 1, "twice": 2, "burst": 4}[pattern]
        sent = [rng.choice([signal.SIGINT, signal.SIGTERM]) for _ in range(count)]
        names = [signal.Signals(s).name for s in sent]
        what = f"{where}: {kind}, sent {names}"
        first = last = time.monotonic()
        times = []
        for i, sig in enumerate(sent):
            if i:
                time.sleep(rng.uniform(0.0, 0.05) if pattern == "burst" else rng.uniform(0.1, 2))
            if proc.poll() is None:
                proc.send_signal(sig)
                last = time.monotonic()
                times.append(last)
        bound = first + STOP_BOUND_S
        if count > 1:
            bound = min(bound, last + FORCED_BOUND_S)
        try:
            proc.wait(max(0.1, bound - time.monotonic()))
        except subprocess.TimeoutExpired:
            out.rest(1)
            pytest.fail(
                f"{what} at {[round(t - first, 2) for t in times]} s: still running "
                f"{time.monotonic() - first:.1f} s after the first:\n{out.tail(first)}"
            )
        seconds = time.monotonic() - first
        tree = watch.stop()
        left = tree.left_after(5) + _marked(env)
        assert not left, f"{what}: left running: {describe(left)}"
        listening = [p for p in _ports(env) if accepts(p)]
        assert not listening, f"{what}: still listening on {listening}"
        if load is not None:
            load.stop()
            assert load.answered, f"{what}: no request was answered before the stop"
        if kind == "serving" and pattern == "once":  # nothing forced: a clean stop
            rest = out.rest(5)
            assert proc.returncode == 0, f"{what}: exit {proc.returncode}:\n{rest}"
            assert "All services stopped." in rest, rest
        return Run(kind, names, seconds)
    finally:
        if load is not None:
            load.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watch.stop()
        _kill_all(env, tree or watch.tree)


def _lane_env(tmp_path: Path, lane: int) -> dict[str, str]:
    env = make_environ(tmp_path / f"lane{lane}", "unused")
    del env["PHR_DATABASE_URL"]  # the embedded default: SQLite under var/
    env.pop("PHR_CONSENT_API_URL", None)  # the runner's own defaults throughout
    return env


def test_ctrl_c_and_sigterm_always_stop_dev_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("PHR_STOPS_SEED") or random.SystemRandom().randrange(10**6))
    rng = random.Random(seed)  # noqa: S311 (moments of a test, replayable)
    envs = [_lane_env(tmp_path, lane) for lane in range(LANES)]
    # The first run makes var/ (keys, databases, demo data) and is stopped cleanly; the other
    # lanes start from a copy of it.
    runs = [_stop_once(envs[0], "serving", "once", rng, f"seed {seed}, preparing")]
    for env in envs[1:]:
        shutil.copytree(envs[0]["PHR_VAR_DIR"], env["PHR_VAR_DIR"])
    kinds = [k for k, n in KINDS.items() for _ in range(n)]
    patterns = [p for p, n in PATTERNS.items() for _ in range(n)]
    rng.shuffle(kinds)
    rng.shuffle(patterns)
    trials = list(enumerate(zip(kinds, patterns, strict=True)))
    failed = threading.Event()  # one lane's failure ends the other lanes after their run

    def lane(n: int) -> list[Run]:
        lane_rng = random.Random(f"{seed}/{n}")  # noqa: S311 (as above)
        env = {**envs[n], **TRIALS_ENV}
        done = []
        for i, (kind, pattern) in trials[n::LANES]:
            if failed.is_set():
                break
            began = time.monotonic()
            where = f"seed {seed}, stop {i + 1} (lane {n})"
            try:
                done.append(_stop_once(env, kind, pattern, lane_rng, where))
            except BaseException:  # pytest.fail's exception too
                failed.set()
                raise
            print(f"{done[-1]} in {time.monotonic() - began:.1f} s")
        return done

    with ThreadPoolExecutor(LANES) as pool:  # a failure in a lane is raised here
        for ran in pool.map(lane, range(LANES)):
            runs += ran
    slowest = max(runs, key=lambda r: r.seconds)
    print(f"seed {seed}: {len(runs)} stops, slowest {slowest}")
