# ruff: noqa: S603 - a benchmark: starts our own CLI
"""Throughput with one and with two replicas per service, in one run (issue 19, "Replicas").

    .venv/bin/python bench/replicas.py --database-url postgresql://postgres@127.0.0.1:55432/postgres

For each replica count (default 1, then 2) on a fresh PostgreSQL database:

1. starts the whole platform with `phr dev run` (1) or `phr dev run --replicas 2` (every
   service twice behind HAProxy), PHR_WORKERS gunicorn workers per replica (default 1, so
   that "two replicas" is two processes where "one" is one), demo data, second city off;
2. signs the demo parent in with the demo app (authorization-code flow, consent screen) once
   per client for the reads, and once per client for the refreshes;
3. measures, `--seconds` each, `--clients` concurrent clients (threads in two load-generator
   processes, keep-alive connections to the public ports) doing
   * reads: `GET /Immunization/<id>` at the PHR server (authenticated, consent-checked,
     audited: an AuditEvent committed before the answer), and
   * refreshes: the refresh-token grant at the IdP (rotation, reuse detection, consent
     re-check at the consent service's decision API);
4. prints requests/s, p50/p99 latency, errors, the CPU of the platform's processes (gunicorn
   masters and workers, HAProxy) and of the PostgreSQL backends of the benchmark database per
   request, and the peak memory: the sum of every platform process's VmHWM.

The load generator runs on the same machine: on 2 cores it competes with the servers, and the
figures are for comparing the two counts in one run, not absolute capacity.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import multiprocessing as mp
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
APP = "demo-vaccination-app"
REDIRECT = "http://127.0.0.1:8010/callback"
PARENT = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the platform ---------------------------------------------------------------------------


def start(
    server: str, replicas: int, workers: int, folder: Path
) -> tuple[subprocess.Popen, dict, str]:
    name = "phr_bench_replicas_" + uuid.uuid4().hex[:8]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    env = {
        "PHR_VAR_DIR": str(folder / "var"),
        "PHR_DATABASE_URL": server.rsplit("/", 1)[0] + "/" + name,
        "PHR_WORKERS": str(workers),
        "PHR_DEV_SECOND_CITY": "off",
        "PHR_LOG_LEVEL": "WARNING",
    }
    for port_var in ("IDP", "FHIR", "CONSENT", "CONNECTOR", "FEDERATION", "CONSENT_API"):
        env[f"PHR_{port_var}_PORT"] = str(free_port())
    env["PHR_CARD_AUTHORITY_URL"] = f"http://127.0.0.1:{free_port()}"
    args = ["--replicas", str(replicas)] if replicas > 1 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "dev", "run", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # gunicorn's access log and HAProxy's notices
        text=True,
        start_new_session=True,
    )
    if proc.stdout is None:
        raise SystemExit("no output pipe")
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        if "Press Ctrl-C to stop." in line:
            break
        if time.monotonic() > deadline:
            raise SystemExit("the platform did not start")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    return proc, env, name


def stop(proc: subprocess.Popen, server: str, name: str) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- signing in -----------------------------------------------------------------------------


def _form(html: str, field: str) -> str:
    m = re.search(rf'name="{field}" value="([^"]+)"', html)
    if not m:
        raise RuntimeError(f"no {field} in page")
    return m.group(1)


def app_tokens(idp: str) -> dict[str, Any]:
    """The demo app's tokens for the demo parent (the last record offered on the consent
    screen, the child's), through the public port (HAProxy when replicated)."""
    browser = requests.Session()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = urlencode({
        "response_type": "code", "client_id": APP, "redirect_uri": REDIRECT,
        "scope": "openid offline_access patient/Immunization.rs", "state": "s",
        "code_challenge": challenge.decode(), "code_challenge_method": "S256",
    })  # fmt: skip
    resp = browser.get(f"{idp}/authorize?{query}", allow_redirects=False, timeout=30)
    for _ in range(8):
        location = resp.headers["Location"]
        if location.startswith(REDIRECT):
            code = parse_qs(urlsplit(location).query)["code"][0]
            return dict(
                requests.post(
                    idp + "/token",
                    data={"grant_type": "authorization_code", "client_id": APP, "code": code,
                          "redirect_uri": REDIRECT, "code_verifier": verifier},
                    timeout=30,
                ).json()
            )  # fmt: skip
        url = idp + location if location.startswith("/") else location
        page = browser.get(url, allow_redirects=False, timeout=30)
        if page.status_code == 302:
            resp = page
            continue
        req = parse_qs(urlsplit(location).query)["req"][0]
        data = {"csrf": _form(page.text, "csrf"), "req": req}
        if "/login" in location:
            data["person"] = PARENT
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=30)
        else:
            data["decision"] = "allow"
            choices = re.findall(r'name="patient" value="([^"]+)"', page.text)
            if choices:  # the parent's own record, then the child's: the child's (vaccinations)
                data["patient"] = choices[-1]
            resp = browser.post(f"{idp}/consent", data=data, allow_redirects=False, timeout=30)
    raise RuntimeError("sign-in did not finish")


# --- load -----------------------------------------------------------------------------------


def _client(kind: str, port: int, job: dict, stop_at: float, out: list, errors: list) -> None:
    conn = HTTPConnection("127.0.0.1", port, timeout=30)
    refresh_token = job.get("refresh_token", "")
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        try:
            if kind == "read":
                conn.request(
                    "GET", job["path"], headers={"Authorization": "Bearer " + job["access"]}
                )
            else:
                body = urlencode({"grant_type": "refresh_token", "client_id": APP,
                                  "refresh_token": refresh_token})  # fmt: skip
                conn.request("POST", "/token", body,
                             {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append(resp.status)
                if kind == "refresh":
                    return  # a broken chain: stop this client
                continue
            if kind == "refresh":
                refresh_token = json.loads(data)["refresh_token"]
            out.append(time.perf_counter() - t0)
        except OSError:
            errors.append(0)
            conn.close()
            conn = HTTPConnection("127.0.0.1", port, timeout=30)


def _generator(kind: str, port: int, jobs: list[dict], stop_at: float, pipe: Any) -> None:
    out: list[float] = []
    errors: list[int] = []
    threads = [
        threading.Thread(target=_client, args=(kind, port, j, stop_at, out, errors)) for j in jobs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipe.send((out, errors))


def _load_sibling(name: str) -> Any:
    """Another benchmark's module (its /proc helpers), loaded by path: bench/ is no package,
    and its idp.py would shadow the IdP package on sys.path."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None  # noqa: S101 - our own file
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


PROCS = _load_sibling("idp")  # tree, postgres_backends, cpu_of, hwm_kb


def _cpu(pids: list[int]) -> float:
    return float(sum(PROCS.cpu_of(pids).values()))


def _platform(root: int) -> list[int]:
    return [p for p in PROCS.tree(root) if p != root]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _hwm_mb(pids: list[int]) -> float:
    return sum(PROCS.hwm_kb(p) for p in pids) / 1024


def measure(kind: str, port: int, jobs: list[dict], seconds: float, platform: int, db: str) -> dict:
    pids = _platform(platform)
    lb = [p for p in pids if _comm(p) == "haproxy"]
    before = _cpu(pids), _cpu(PROCS.postgres_backends(db)), time.monotonic(), _cpu(lb)
    stop_at = time.monotonic() + seconds
    halves = [jobs[0::2], jobs[1::2]]
    pipes, procs = [], []
    for half in halves:
        mine, theirs = mp.Pipe(duplex=False)
        proc = mp.Process(target=_generator, args=(kind, port, half, stop_at, theirs))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    lat: list[float] = []
    errors: list[int] = []
    for pipe, proc in zip(pipes, procs, strict=True):
        got = pipe.recv()
        lat += got[0]
        errors += got[1]
        proc.join()
    elapsed = time.monotonic() - before[2]
    server_cpu = _cpu(pids) - before[0]
    pg_cpu = _cpu(PROCS.postgres_backends(db)) - before[1]
    lb_cpu = _cpu(lb) - before[3]
    lat.sort()
    n = len(lat)
    return {
        "kind": kind,
        "requests": n,
        "rps": n / elapsed,
        "p50_ms": 1000 * statistics.median(lat) if lat else 0.0,
        "p99_ms": 1000 * lat[min(n - 1, int(n * 0.99))] if lat else 0.0,
        "errors": len(errors),
        "server_cpu_ms": 1000 * server_cpu / max(n, 1),
        "pg_cpu_ms": 1000 * pg_cpu / max(n, 1),
        "haproxy_cpu_ms": 1000 * lb_cpu / max(n, 1),
    }


def run(server: str, replicas: int, args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="phr-bench-replicas-") as tmp:
        proc, env, db = start(server, replicas, args.workers, Path(tmp))
        try:
            idp = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
            fhir = f"http://127.0.0.1:{env['PHR_FHIR_PORT']}"
            first = app_tokens(idp)
            bearer = {"Authorization": "Bearer " + first["access_token"]}
            bundle = requests.get(fhir + "/Immunization", headers=bearer, timeout=30).json()
            ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
            if not ids:
                raise SystemExit("the demo record has no Immunization to read")
            reads = [{"access": first["access_token"], "path": f"/Immunization/{ids[i % len(ids)]}"}
                     for i in range(args.clients)]  # fmt: skip
            refreshes = [
                {"refresh_token": app_tokens(idp)["refresh_token"]} for _ in range(args.clients)
            ]
            measure("read", int(env["PHR_FHIR_PORT"]), reads, 3, proc.pid, db)  # warm-up
            results = [
                measure("read", int(env["PHR_FHIR_PORT"]), reads, args.seconds, proc.pid, db),
                measure("refresh", int(env["PHR_IDP_PORT"]), refreshes, args.seconds, proc.pid, db),
            ]
            peak = _hwm_mb(_platform(proc.pid))
            count = len(_platform(proc.pid))
            for r in results:
                r.update(replicas=replicas, peak_mb=peak, processes=count)
            return results
        finally:
            stop(proc, server, db)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--database-url", required=True, help="a PostgreSQL server to create databases on"
    )
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, default=1, help="PHR_WORKERS per replica")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    results = [r for n in args.replicas for r in run(args.database_url, n, args)]
    print(
        f"\nclients {args.clients}, {args.seconds:g} s each, "
        f"PHR_WORKERS={args.workers} per replica, {os.cpu_count()} cores, "
        f"load average before {load:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    print(
        "| replicas | operation | req/s | p50 ms | p99 ms | errors | platform CPU ms/req "
        "| of which HAProxy | PostgreSQL CPU ms/req | processes | peak memory MB (sum of VmHWM) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        cells = [
            r["replicas"], r["kind"], f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}", r["errors"], f"{r['server_cpu_ms']:.2f}",
            f"{r['haproxy_cpu_ms']:.2f}", f"{r['pg_cpu_ms']:.2f}", r["processes"],
            f"{r['peak_mb']:.0f}",
        ]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
