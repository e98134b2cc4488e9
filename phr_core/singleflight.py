"""Single flight: concurrent misses for the same key wait for one load instead of each making
its own (a cache stampede: when a hot entry expires, every thread asking for it would call the
upstream service at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """`do(key, fn)`: the first caller for `key` runs `fn`; callers that arrive while it runs
    wait for its result (or its exception) instead of running `fn` again. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}
        self.loads = 0  # how many times `fn` ran (for tests)

    def do(self, key: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
                self.loads += 1
        if not leader:
            if not call.done.wait(timeout):
                raise TimeoutError(f"waited {timeout} s for another thread's load")
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[return-value]  # set: done without an error
        try:
            call.value = fn()
            return call.value
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.done.set()
