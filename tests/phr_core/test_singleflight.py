"""Single flight: concurrent callers of one key share one run of the function, its value or
its exception, and the next call after it runs afresh."""

from __future__ import annotations

import threading
import time

import pytest

from phr_core.singleflight import SingleFlight


def _together(n: int, flight: SingleFlight[str], fn) -> list[object]:  # type: ignore[no-untyped-def]
    out: list[object] = [None] * n

    def run(i: int) -> None:
        try:
            out[i] = flight.do("k", fn, timeout=10)
        except Exception as exc:  # collected for the assertions
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out  # type: ignore[return-value]


def test_followers_share_the_leaders_value_and_error() -> None:
    flight: SingleFlight[str] = SingleFlight()
    gate = threading.Event()

    def failing() -> str:
        gate.wait(10)
        raise RuntimeError("upstream down")

    threads, out = _together(8, flight, failing)
    time.sleep(0.2)  # every thread has joined the one call
    gate.set()
    for t in threads:
        t.join(10)
    assert flight.loads == 1
    assert all(isinstance(o, RuntimeError) and str(o) == "upstream down" for o in out), out
    assert flight.do("k", lambda: "fresh") == "fresh"  # the failed flight is gone
    assert flight.loads == 2


def test_a_follower_gives_up_after_its_timeout() -> None:
    flight: SingleFlight[str] = SingleFlight()
    gate, running = threading.Event(), threading.Event()

    def slow() -> str:
        running.set()
        gate.wait(10)
        return "v"

    leader = threading.Thread(target=lambda: flight.do("k", slow))
    leader.start()
    assert running.wait(10)
    with pytest.raises(TimeoutError):
        flight.do("k", lambda: "never", timeout=0.1)
    gate.set()
    leader.join(10)
