"""A gunicorn configuration file for `bench/soak.py --trace PACKAGE`: finds what grows in one
service's workers, without touching the service's code.

soak.py puts `-c bench/soak_probe.py` into GUNICORN_CMD_ARGS (gunicorn reads it beside the
command line the launcher builds) with SOAK_TRACE_APP (a package, e.g. `phr_server`) and
SOAK_TRACE_DIR. In each worker of a gunicorn whose app lives in that package, `post_fork`
starts tracemalloc and a thread that, every SOAK_TRACE_EVERY_S seconds, takes a snapshot; the
first one is the baseline (after the worker's own warm-up), each later one is written as a
diff against it (top lines, then top tracebacks) with the gc counts and the object types
whose number grew. Debugging only: tracemalloc costs CPU and memory of its own.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any


def _types() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _report(first: tracemalloc.Snapshot, types0: Counter[str], n: int, out: Path) -> None:
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    grown = _types() - types0
    lines = [
        f"snapshot {n} of pid {os.getpid()}: traced {current / 2**20:.1f} MiB "
        f"(peak {peak / 2**20:.1f}); gc counts {gc.get_count()}; "
        f"objects {len(gc.get_objects())}",
        "object types that grew: " + ", ".join(f"{k} +{v}" for k, v in grown.most_common(15)),
        "",
        "top lines grown since the baseline:",
    ]
    lines += [str(s) for s in snap.compare_to(first, "lineno")[:25]]
    lines += ["", "top tracebacks grown since the baseline:"]
    for stat in snap.compare_to(first, "traceback")[:6]:
        lines.append(str(stat))
        lines += ["    " + line for line in stat.traceback.format()]
    (out / f"{os.getpid()}-{n:02d}.txt").write_text("\n".join(lines) + "\n", "utf-8")


def post_fork(server: Any, worker: Any) -> None:
    package = os.environ.get("SOAK_TRACE_APP", "")
    uri = str(getattr(server.app, "app_uri", "") or "")
    if not package or not uri.startswith(package + "."):
        return
    out = Path(os.environ["SOAK_TRACE_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    every = float(os.environ.get("SOAK_TRACE_EVERY_S", "180"))
    tracemalloc.start(int(os.environ.get("SOAK_TRACE_FRAMES", "12")))

    def loop() -> None:
        time.sleep(every)
        first = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        types0 = _types()
        for n in range(1, 1000):
            time.sleep(every)
            _report(first, types0, n, out)

    threading.Thread(target=loop, name="soak-probe", daemon=True).start()
