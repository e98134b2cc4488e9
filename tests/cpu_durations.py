"""`--cpu-durations=N`: the N tests that used the most CPU time, beside pytest's --durations.

Wall time on a shared 2-core machine depends on what else runs there; CPU time hardly does, so
this is the figure to compare when making the suite cheaper (issue 16's 15 minutes). A test's
CPU time is its process's (every thread: servers a fixture runs in threads count too) plus
that of the child processes it waited for (`phr dev run` and its gunicorn workers once
stopped, browsers, `phr` commands), over setup, call and teardown. A session fixture's
processes count where they are stopped. Works with xdist: each report carries its figure."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

KEY = "cpu_seconds"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="show the N tests that used the most CPU time (with their children's), and the sum",
    )


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    start = _cpu()
    yield
    item.stash[_SPENT] = _cpu() - start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    start = _cpu()
    yield
    item.stash[_SPENT] = item.stash.get(_SPENT, 0.0) + _cpu() - start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    start = _cpu()
    yield
    spent = item.stash.get(_SPENT, 0.0) + _cpu() - start
    item.user_properties.append((KEY, round(spent, 3)))  # in the teardown report


_SPENT = pytest.StashKey[float]()
_SEEN: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for key, value in report.user_properties:
            if key == KEY and isinstance(value, (int, float)):
                _SEEN[report.nodeid] = float(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count = terminalreporter.config.getoption("cpu_durations")
    if count is None or not _SEEN:
        return
    shown = min(count, len(_SEEN)) if count else len(_SEEN)
    terminalreporter.write_sep("=", f"most CPU time: {shown} of {len(_SEEN)} tests")
    ranked = sorted(_SEEN.items(), key=lambda kv: -kv[1])
    for nodeid, seconds in ranked[:shown]:
        terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")
    total = sum(_SEEN.values())
    terminalreporter.write_line(f"{total:8.1f}s cpu  all tests (their processes and children)")
