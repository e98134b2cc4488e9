"""How launcher.supervisor stops a child (what `phr dev run`, `phr … serve` and `phr dev
example` rely on), with a child that will not stop by itself: it ignores SIGTERM and has forked
a grandchild that ignores it too, like a server stuck in a request. The grace time is waited
for, then the whole group is killed; a second signal cuts the wait short; a flood of signals
never hangs the supervisor."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import pytest

from launcher.supervisor import REAP_TIMEOUT_S
from tests.processes import Lines, Tree, stop

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

STUBBORN = """
import os, signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    time.sleep(600)
    os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""
SUPERVISE = (
    "import os, sys; from launcher.supervisor import run_until_stopped; "
    "raise SystemExit(run_until_stopped(sys.argv[2:], env=os.environ, grace_s=float(sys.argv[1])))"
)


def _supervised(grace_s: float, kind: str) -> tuple[subprocess.Popen[str], Tree]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, str(grace_s), sys.executable, "-c", STUBBORN, kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if Lines.of(proc).until("ready", 30) is None:
        stop(proc, timeout=10)
        pytest.fail("the child never started")
    tree = Tree(proc.pid).add()
    assert len(tree.members) == 3, "supervisor, child, grandchild"
    assert len(tree.sessions) == 1, "the child leads a session (and group) of its own"
    return proc, tree


def _exit_within(proc: subprocess.Popen[str], tree: Tree, seconds: float) -> float:
    began = time.monotonic()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        tree.add().kill()
        proc.kill()
        proc.wait(10)
        pytest.fail(f"still running {seconds} s later")
    assert not tree.left_after(2), "the child's group was not killed"
    return time.monotonic() - began


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stubborn_group_is_killed_after_the_grace_time(sig: int) -> None:
    proc, tree = _supervised(2.0, "stubborn")
    proc.send_signal(sig)
    took = _exit_within(proc, tree, 2.0 + REAP_TIMEOUT_S + 5)
    assert took >= 1.9, "the grace time was not waited for"
    assert proc.returncode == 0


def test_a_second_signal_stops_at_once() -> None:
    proc, tree = _supervised(120.0, "stubborn")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None, "it waits for the child during the grace time"
    proc.send_signal(signal.SIGINT)
    _exit_within(proc, tree, REAP_TIMEOUT_S + 3)


def test_a_child_that_stops_on_sigterm_is_not_kept_waiting() -> None:
    proc, tree = _supervised(120.0, "cooperative")
    proc.send_signal(signal.SIGTERM)
    # Well inside the 120 s grace time, which is what is not waited for (a loaded machine may
    # take seconds to schedule the child's exit: the bound only has to tell the two apart).
    assert _exit_within(proc, tree, 60) < 60
    assert proc.returncode == 0


def test_a_flood_of_signals_never_hangs_it() -> None:
    for _ in range(3):
        proc, tree = _supervised(120.0, "stubborn")
        for i in range(300):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT if i % 2 else signal.SIGTERM)
            time.sleep(0.001)
        _exit_within(proc, tree, REAP_TIMEOUT_S + 5)


def test_the_launcher_takes_ctrl_c_back_before_its_imports() -> None:
    """A `phr` started with SIGINT ignored (a script's background job, CI) takes it back as
    soon as the launcher package is imported, before the CLI's imports (seconds on a busy
    machine): CI lost a SIGINT sent meanwhile, and `phr dev run` went on to serve. Checked at
    the package's import, with nothing else of ours imported yet."""
    probe = (
        "import signal, sys; import launcher; "
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
        "sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'phr_core', 'idp', 'consent', 'phr_server', 'connectors', 'portal')))"
    )
    # SIGINT ignored, then exec: as a script's background job starts (an ignored signal
    # stays ignored across exec)
    ignoring = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, '-c', sys.argv[1]])"
    )
    out = subprocess.run(
        [sys.executable, "-c", ignoring, probe], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "[]"], out.stdout
