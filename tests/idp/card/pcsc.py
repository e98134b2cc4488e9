"""A private pcscd with the virtual reader for one test (idp.card.virtual_reader.stack), and
`phr card …` run as its own process against it (pcsc-lite's client library reads the socket
name once per process). Outside CI a machine without the stack skips with the reason; in CI it
is a failure, because `.ci/run` installs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.card.virtual_reader.stack import PcscStack, missing
from tests.conftest import IN_CI

PHR = [sys.executable, "-m", "launcher.cli"]
ROOT = Path(__file__).resolve().parents[3]


def require_stack() -> None:
    reason = missing()
    if reason:
        reason = f"virtual PC/SC reader unavailable: {reason}; .ci/run installs it"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def started_stack(folder: Path) -> Iterator[PcscStack]:
    """For a fixture: skip (or fail in CI) without the stack, else run one and stop it."""
    require_stack()
    with PcscStack(folder) as stack:
        yield stack


def phr(
    stack: PcscStack, env: dict[str, str], args: list[str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PHR, *args],
        input=stdin,
        env={**stack.env, "LANG": "C.UTF-8", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def phr_started(stack: PcscStack, env: dict[str, str], args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PHR, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**stack.env, "LANG": "C.UTF-8", **env},
        text=True,
        cwd=ROOT,
    )
