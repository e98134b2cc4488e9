"""Child processes in tests that can never hang the suite: output read with a deadline, every
stop bounded, and whatever a stop leaves behind (a gunicorn master, an example app re-parented
to init) found through /proc, killed, and reported as a failure.

A process is named by its pid and its start time (so a reused pid is never mistaken for it);
`Tree` also keeps the sessions its processes lead, which catches what they fork later."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start: int  # clock ticks after boot


def _stat(pid: int) -> Stat | None:
    # Read with os.open/os.read rather than pathlib: test_run_stops.py scans every process ten
    # times a second in each lane, and this is a third of the CPU of Path.read_text.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session tty tpgid flags minflt … starttime(22nd)"; comm may
    # hold spaces and parentheses, so split after its last ")".
    rest = data[data.rindex(")") + 2 :].split()
    return Stat(pid, rest[0], int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]))


def all_processes() -> list[Stat]:
    found = []
    for name in os.listdir(PROC) if PROC.is_dir() else ():
        if name.isdigit():
            s = _stat(int(name))
            if s is not None:
                found.append(s)
    return found


@dataclass
class Tree:
    """A process and its descendants, as seen so far (`add` again to see new ones)."""

    root: int
    members: set[tuple[int, int]] = field(default_factory=set)  # (pid, start)
    sessions: set[int] = field(default_factory=set)  # sessions a member leads
    since: int = 0  # the root's start: anything in those sessions started later is ours

    def add(self) -> Tree:
        procs = all_processes()
        children: dict[int, list[Stat]] = {}
        for s in procs:
            children.setdefault(s.ppid, []).append(s)
        root = next((s for s in procs if s.pid == self.root), None)
        if root is not None:
            self.since = self.since or root.start
            todo = [root]
            while todo:
                s = todo.pop()
                self.members.add((s.pid, s.start))
                if s.session == s.pid and s.pid != self.root:
                    self.sessions.add(s.pid)
                todo += children.get(s.pid, [])
        return self

    def alive(self) -> list[Stat]:
        """Members (other than the root) and processes of their sessions that still run;
        zombies hold no port and count as gone."""
        out = []
        for s in all_processes():
            if s.pid == self.root or s.state == "Z":
                continue
            if (s.pid, s.start) in self.members or (
                s.session in self.sessions and s.start >= self.since
            ):
                out.append(s)
        return out

    def kill(self) -> None:
        for s in self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(s.pid, signal.SIGKILL)

    def left_after(self, timeout: float) -> list[Stat]:
        """What still runs once `timeout` seconds passed (dying processes get that long)."""
        deadline = time.monotonic() + timeout
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def with_environ(name: str, value: str) -> list[Stat]:
    """Live processes whose environment sets `name` to `value` (a run's own PHR_VAR_DIR marks
    every process it started, however it was re-parented)."""
    mark = f"{name}={value}".encode()
    found = []
    for s in all_processes():
        if s.state == "Z" or s.pid == os.getpid():
            continue
        try:
            environ = (PROC / str(s.pid) / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            found.append(s)
    return found


def describe(procs: list[Stat]) -> str:
    def cmdline(pid: int) -> str:
        try:
            return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return "?"

    return "; ".join(f"{s.pid} ({cmdline(s.pid)[:120]})" for s in procs)


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on the port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


class Lines:
    """A child's stdout read by a daemon thread, so that no read waits without a deadline
    (a pipe stays open as long as any process that inherited it lives)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._queue: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self.seen: list[str] = []
        self.at: list[float] = []  # when each line of `seen` arrived (time.monotonic)
        self.ended = False
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    @classmethod
    def of(cls, proc: subprocess.Popen[str]) -> Lines:
        """The reader of this process's output (made on first use)."""
        if proc.pid not in _READERS:
            _READERS[proc.pid] = cls(proc)
        return _READERS[proc.pid]

    def _pump(self, stream: object) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:  # type: ignore[attr-defined]
                self._queue.put((line.rstrip("\n"), time.monotonic()))
        self._queue.put(None)

    def next(self, deadline: float) -> str | None:
        """The next line, or None at the end of the output or at the deadline."""
        if self.ended:
            return None
        try:
            item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if item is None:
            self.ended = True
            return None
        self.seen.append(item[0])
        self.at.append(item[1])
        return item[0]

    def tail(self, since: float, lines: int = 60) -> str:
        """The last lines read, each with its time relative to `since`."""
        pairs = list(zip(self.at, self.seen, strict=True))[-lines:]
        return "\n".join(f"{t - since:+7.2f} {line}" for t, line in pairs)

    def until(self, marker: str, timeout: float) -> list[str] | None:
        """Lines up to the first holding `marker`; None if it did not come in time."""
        deadline = time.monotonic() + timeout
        lines = []
        while (line := self.next(deadline)) is not None:
            lines.append(line)
            if marker in line:
                return lines
        return None

    def rest(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        lines = []
        while (line := self.next(deadline)) is not None:
            lines.append(line)
        return "\n".join(lines)


_READERS: dict[int, Lines] = {}


def stop(
    proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 30
) -> tuple[int, str]:
    """Send `sig` and wait at most `timeout` seconds for the process to exit and leave nothing
    behind. Returns (exit status, the output not read yet). A process that does not stop in
    time, or leaves a process behind, is killed with all it left and fails the test."""
    tree = Tree(proc.pid).add()
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    problems = []
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        problems.append(f"did not exit within {timeout:g} s of signal {sig}")
        tree.add().kill()
        proc.kill()
        proc.wait(10)
    left = tree.left_after(5)
    if left:
        problems.append("left running: " + describe(left))
        tree.kill()
    rest = Lines.of(proc).rest(5) if proc.stdout is not None else ""
    _READERS.pop(proc.pid, None)
    if problems:
        raise AssertionError("; ".join(problems) + "\noutput:\n" + rest[-4000:])
    assert proc.returncode is not None
    return proc.returncode, rest
