"""Child processes that always stop: each in a process group of its own, stopped as a group
with a bound, on Ctrl-C or SIGTERM received in a way that cannot deadlock.

Why not a `threading.Event` set from a signal handler: the handler runs on the main thread
between two bytecodes, possibly while that same thread holds the Event's lock inside
`Event.wait`; `Event.set` then waits for that lock forever (issue 23). Here the handler does
nothing; the C-level handler writes the signal's number to a pipe (`signal.set_wakeup_fd`) and
the loop waits on that pipe with `select`, so a signal wakes it at once and no lock is touched.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REAP_TIMEOUT_S = 5.0  # after SIGKILL: only a process stuck in the kernel takes longer


class StopSignals:
    """While installed, SIGINT and SIGTERM only count (`received`): `wait` sleeps until one
    arrives and returns True once one has; `stop_groups` treats the next one as "at once"."""

    def __init__(self) -> None:
        self.received = 0  # written by the loop only (from the pipe), never by the handler
        self._fds: tuple[int, int] | None = None
        self._previous_fd = -1
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def install(self) -> StopSignals:
        """Take over SIGINT and SIGTERM (from the main thread)."""
        read, write = os.pipe()
        for fd in (read, write):
            os.set_blocking(fd, False)  # a full pipe drops a byte instead of blocking
            os.set_inheritable(fd, False)
        self._fds = (read, write)
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        # An inherited SIG_IGN (a background job of a script) is replaced too: Ctrl-C and
        # SIGTERM are how this process is documented to stop.
        self._previous = {sig: signal.signal(sig, _count_only) for sig in STOP_SIGNALS}
        return self

    def uninstall(self) -> None:
        """Give SIGINT and SIGTERM back to whoever had them."""
        for sig, handler in self._previous.items():
            # None: a handler not set from Python; there is no way to put that back
            signal.signal(sig, handler)  # type: ignore[arg-type]  # see above
        signal.set_wakeup_fd(self._previous_fd)
        if self._fds:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    @property
    def requested(self) -> bool:
        self._drain()
        return self.received > 0

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, less if a stop signal arrives; True once one has."""
        if not self._fds:
            raise RuntimeError("StopSignals.wait outside its `with` block")
        # PEP 475: select is retried after EINTR, and the signal's byte is then in the pipe.
        select.select([self._fds[0]], [], [], max(0.0, timeout))
        return self.requested

    def _drain(self) -> None:
        if not self._fds:
            return
        while True:
            try:
                data = os.read(self._fds[0], 512)
            except BlockingIOError:
                return
            if not data:
                return
            self.received += sum(1 for b in data if b in STOP_SIGNALS)


def _count_only(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing to do (the wakeup pipe already has the byte); it only
    replaces the default actions (KeyboardInterrupt, termination)."""


def start(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new session and process group: the terminal's Ctrl-C
    reaches only us, and stopping the group reaches everything it forks (gunicorn's workers)."""
    # S603: gunicorn_command() of a configured service (launcher.runner), no shell
    return subprocess.Popen(command, env=dict(env), cwd=cwd, start_new_session=True)  # noqa: S603 - see above


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it: until we reap it, its pid (which is
    also its process group's id) cannot be reused, so signalling the group stays safe."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the child's whole process group (its leader's pid is the group's id)."""
    if proc.returncode is not None:
        return  # reaped: the id may be reused; the group was killed before we reaped it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_groups(
    procs: Sequence[subprocess.Popen[bytes]],
    stop: StopSignals | None,
    grace_s: float,
    *,
    announce: Callable[[str], None] = print,
) -> None:
    """SIGTERM to every child's group; wait until every leader has exited, at most `grace_s`
    seconds or until one more stop signal arrives (then at once); SIGKILL to every group
    (stragglers: workers of a killed master, anything they forked); reap, with a bound."""
    started_with = stop.received if stop else 0

    def forced() -> bool:  # a second signal, or one after a stop we began on our own
        if stop is None or not stop.requested:
            return False
        return stop.received > started_with or stop.received >= 2

    for p in procs:
        signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    hinted = False
    while not all(exited(p) for p in procs):
        if forced() or time.monotonic() > deadline:
            break
        if not hinted and stop is not None:
            hinted = True
            with contextlib.suppress(OSError):  # a closed stdout must not stop the stop
                announce("Stopping… (another Ctrl-C stops at once)")
        if stop is not None:
            stop.wait(0.1)
        else:
            time.sleep(0.1)
    for p in procs:
        signal_group(p, signal.SIGKILL)
    deadline = time.monotonic() + REAP_TIMEOUT_S
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))


def run_until_stopped(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None, grace_s: float
) -> int:
    """Run one child (its whole group) until it exits or we are asked to stop. Returns the
    child's exit status, or 0 when we stopped it."""
    with StopSignals() as stop:
        proc = start(command, env=env, cwd=cwd)
        try:
            while not stop.wait(0.5):
                if exited(proc):
                    break
        finally:
            stopped = not exited(proc)
            stop_groups([proc], stop, grace_s, announce=lambda _: None)
    code = proc.returncode or 0
    return 0 if stopped else (128 - code if code < 0 else code)
