"""The soak of issue 20: the whole platform at about 80 % of its measured capacity for a long
time, judged on errors (target: none) and on each service's memory (no growth beyond 10 %
after warm-up).

    .venv/bin/python bench/soak.py --minutes 30 --plot bench/soak.png    # search, then 30 min
    .venv/bin/python bench/soak.py --minutes 2 --capacity 5 --browsers 6 --apps 3   # as CI runs it

It is bench/platform_load.py's platform, actors, mix, side loads (revoke and re-grant every
60 s, `phr connector run` every 180 s) and capacity search, imported, not copied; this file adds
the warm-up, the memory verdict and the exit code.

Warm-up, defined so that a short run is not judged on start-up noise: after the capacity
search (or at once with --capacity), the hold rate is offered for --warmup-seconds (60) and,
if need be, longer until at least one revoke-and-re-grant and one connector run have finished
since the platform came up, so every code path of the mix (each portal page, app reads and
searches, refreshes, card sign-ins, revocation, a new grant, a connector load) has run and
filled its caches, templates and pools. Memory is sampled at the end of the warm-up (the
baseline) and at the end of every minute of the hold; a service's growth is its highest RSS
during the hold over its baseline. Errors of the warm-up count like those of the hold.

The exit code is 1 when any operation failed, a revocation or connector run failed, the
platform's log holds a traceback, or a service grew more than --max-growth percent (10); 0
otherwise. The figures go to --json (and the plot to --plot when given).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import platform_load as pl  # noqa: E402

WARMUP_LIMIT_S = 300.0  # the longest the warm-up waits for its revocation and connector run
CHUNK_S = 10.0


def warm_up(run: pl.Run, rate: float, seconds: float) -> tuple[float, float]:
    """Offer `rate` for `seconds`, then in 10 s chunks until a revocation and a connector run
    have finished (bounded). Returns the warm-up's window on the recorder's clock."""
    t0 = time.monotonic() - run.rec.t0
    pl.drive(run.mix, run.rec, rate, seconds, run.pool)
    deadline = time.monotonic() + WARMUP_LIMIT_S
    while time.monotonic() < deadline:
        kinds = {e["kind"] for e in run.rec.events}
        if {"revoke", "connector"} <= kinds:
            break
        pl.drive(run.mix, run.rec, rate, CHUNK_S, run.pool)
    return t0, time.monotonic() - run.rec.t0


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if not var:
        return 0.0
    return round(sum((t - mx) * (v - my) for t, v in points) / var * 60, 3)


def memory_verdict(
    baseline: dict, hold: list[dict], services: list[str], limit_pct: float
) -> dict[str, dict]:
    """Each service's growth over the hold against its RSS at the end of the warm-up, and the
    slope over the first and the second half of the hold (a leak keeps its slope; a cache
    filling up flattens)."""
    out: dict[str, dict] = {}
    for name in services:
        if name not in baseline:
            continue
        pts = [(m["t"], m[name]) for m in hold if name in m]
        if not pts:
            continue
        top = max(v for _, v in pts)
        half = len(pts) // 2
        growth = (top - baseline[name]) / baseline[name] * 100
        out[name] = {
            "baseline_mb": baseline[name],
            "last_mb": pts[-1][1],
            "max_mb": top,
            "growth_pct": round(growth, 2),
            "slope_mb_per_min": slope_mb_per_min([(baseline["t"], baseline[name]), *pts]),
            "slope_first_half": slope_mb_per_min([(baseline["t"], baseline[name]), *pts[:half]]),
            "slope_second_half": slope_mb_per_min(pts[half:]),
            "ok": growth <= limit_pct,
        }
    return out


def load_average(rows: list[dict]) -> dict:
    """The shared machine's 1-minute load average over some samples (the search's steps, the
    hold's minutes): the other work beside the platform, so a reader can judge the figures."""
    xs = sorted(r["load_1m"] for r in rows if "load_1m" in r)
    if not xs:
        return {}
    return {"min": xs[0], "median": xs[len(xs) // 2], "max": xs[-1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pl.add_platform_arguments(ap)
    ap.add_argument("--warmup-seconds", type=float, default=60.0)
    ap.add_argument("--max-growth", type=float, default=10.0, help="percent, after warm-up")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "soak.json")
    ap.add_argument("--plot", type=Path, help="a PNG (needs matplotlib: '.[bench]')")
    ap.add_argument(
        "--trace",
        metavar="PACKAGE",
        help="debugging: tracemalloc diffs from the workers of this package's service "
        "(e.g. phr_server), through bench/soak_probe.py; files in --trace-dir",
    )
    ap.add_argument("--trace-dir", type=Path, default=ROOT / "bench" / "soak_trace")
    ap.add_argument("--trace-every", type=float, default=180.0, help="seconds")
    args = ap.parse_args(argv)
    if args.trace:  # read by gunicorn in every service the platform starts (soak_probe.py)
        os.environ["GUNICORN_CMD_ARGS"] = f"-c {ROOT / 'bench' / 'soak_probe.py'}"
        os.environ.update(
            SOAK_TRACE_APP=args.trace,
            SOAK_TRACE_DIR=str(args.trace_dir),
            SOAK_TRACE_EVERY_S=str(args.trace_every),
        )

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # so `timeout`'s SIGTERM also stops the platform, drops the db

    signal.signal(signal.SIGTERM, _interrupt)

    started = datetime.now(UTC)
    with pl.running(args) as run:
        p, rec = run.p, run.rec
        search = pl.capacity_of(args, run)
        capacity = search["capacity_ops_s"] or args.min_rate
        rate = round(capacity * args.hold_fraction, 2)
        print(f"capacity {capacity} ops/s; warm-up at {rate} ops/s", flush=True)
        w0, w1 = warm_up(run, rate, args.warmup_seconds)
        baseline = run.sample_memory(warm_up_end=True)
        print(f"warm-up {w1 - w0:.0f} s; baseline rss {baseline}", flush=True)
        h0 = time.monotonic() - rec.t0
        minutes = pl.hold_minutes(run, rate, args.minutes)
        h1 = time.monotonic() - rec.t0
        hold = pl.window(rec, h0, h1 + 1)
        warm = pl.window(rec, w0, w1)
    hold_mem = [m for m in run.memory if "minute" in m and m["t"] >= h0]
    memory = memory_verdict(baseline, hold_mem, sorted(p.ports), args.max_growth)
    side = [e for e in rec.events if e["kind"] in ("revoke", "connector")]
    log_errors = pl.server_log_errors(p)
    failures = {
        "operations_in_hold": hold["errors"],
        "operations_in_warm_up": warm["errors"],
        "side_loads": sum(not e["ok"] for e in side),
        "server_log": len(log_errors),
        "services_over_growth_limit": sorted(k for k, v in memory.items() if not v["ok"]),
    }
    passed = not any(failures.values())
    result = {
        "benchmark": "bench/soak.py",
        "command": " ".join([".venv/bin/python", "bench/soak.py", *(argv or sys.argv[1:])]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": pl.machine(),
        "setup": {
            "workers": args.workers,
            "portal_browsers": args.browsers,
            "app_users": args.apps + 1,
            "weights": pl.WEIGHTS,
            "revoke_every_s": args.revoke_every,
            "connector_every_s": args.connector_every,
            "max_growth_pct": args.max_growth,
        },
        "search": search,
        "load_1m": {
            "search": load_average(search["steps"]),
            "hold": load_average(hold_mem),
        },
        "warm_up": {"seconds": round(w1 - w0, 1), "rate_ops_s": rate, **warm},
        "hold": {
            "rate_ops_s": rate,
            "minutes": args.minutes,
            "wall_minutes": round((h1 - h0) / 60, 2),
            **hold,
            "per_minute": minutes,
        },
        "memory_mb_per_minute": run.memory,
        "memory_after_warm_up": memory,
        "revocations": [e for e in side if e["kind"] == "revoke"],
        "connector_runs": [e for e in side if e["kind"] == "connector"],
        "server_log_errors": log_errors[:20],
        "resent_after_reset": pl.RESENT["count"],
        "signed_in_again": hold["signed_in_again"] + warm["signed_in_again"],
        "failures": failures,
        "passed": passed,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
    if args.plot:
        pl.plot(result, args.plot)
    print(
        f"soak {'PASSED' if passed else 'FAILED'}: hold {hold['operations']} ops at {rate} "
        f"ops/s, errors {hold['errors']} (+{warm['errors']} in warm-up), p99 {hold['p99_ms']} "
        f"ms; growth after warm-up "
        f"{json.dumps({k: v['growth_pct'] for k, v in memory.items()})} % "
        f"(limit {args.max_growth:g}); failures {json.dumps(failures)}; GETs resent "
        f"{pl.RESENT['count']}; signed in again {result['signed_in_again']}; load average "
        f"{json.dumps(result['load_1m'])}; wrote {args.json}",
        flush=True,
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
