# ruff: noqa: S311, S603, S607 - a benchmark: random picks, our own gunicorn and ps
"""Benchmark of the PHR server's read path under its production WSGI server (gunicorn).

    .venv/bin/python bench/fhir_api.py --patients 10000 --per-patient 100 \
        --database-url postgresql://postgres@127.0.0.1:55432/postgres

1. Creates a fresh database (a new PostgreSQL database on the given server, or a SQLite file),
   migrates it and bulk-loads `patients × per-patient` resources (one Patient, the rest
   Observations) through the server's own storage code: sealed bodies, index tables,
   compartments. Validation is skipped for the bulk load (the content is generated).
2. Serves an IdP stand-in (JWKS, the server's client-credentials token) and a consent-service
   stand-in (grants, patients) on loopback,
   and starts `gunicorn phr_server.app:create_app()` with PHR_WORKERS workers.
3. Measures, at concurrency 1 and 8 (one client process each), for `--seconds`:
   reads by id (authenticated, consent-checked, and audited: each AuditEvent committed, by
   the server's group commit, before its answer leaves), patient-scoped searches
   (`Observation?patient=…&_count=20`), and the ceiling: a bare endpoint of the same stack
   (Flask app from phr_core.webapp.build_app under the same gunicorn) that fetches one row by
   primary key and returns its bytes, no auth, no decryption, no audit. Both servers run
   side by side and the three are measured in turn, `--rounds` times, so that a machine
   shared with other work loads them alike; each figure is the median over the rounds.
4. Prints requests/s, p50 and p99 latency, the server's CPU milliseconds per request (its
   gunicorn processes: on a shared machine the stable figure; requests/s per core = 1000 /
   it), the CPU of the PostgreSQL backends serving the benchmark database per request
   (PostgreSQL on the same machine only), the load average around each run, read/ceiling
   ratios per round, and the peak RSS of the server processes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phr_core.pairwise_ids import CLAIM, encode_key, for_key  # noqa: E402

MUNI = "072028"
SECTOR_KEY = b"bench-sector-key".ljust(64, b".")  # the app's sector key (pairwise ids)
# A read's AuditEvent is committed before its answer (phr_server/audit_batch.py): nothing is
# left to store after the last one; a short pause lets the server's CPU figures settle.
SETTLE_S = 0.2


# --- the ceiling app (imported by gunicorn from this file) ------------------------------------


def ceiling_app():  # type: ignore[no-untyped-def]
    """The same stack (build_app, settings, SQLAlchemy engine) with one route that fetches one
    row by primary key and returns its stored bytes."""
    from flask import Blueprint, Response
    from sqlalchemy import select

    from phr_core.webapp import build_app, database
    from phr_server.models import StoredResource

    bp = Blueprint("ceiling", __name__)
    table = StoredResource.__table__

    @bp.get("/row/<rid>")
    def row(rid: str):  # type: ignore[no-untyped-def]
        with database().session() as s:
            body = s.scalar(
                select(table.c.body).where(
                    table.c.resource_type == "Observation", table.c.id == rid
                )
            )
        return Response(bytes(body), content_type="application/octet-stream")

    return build_app("fhir", None, [bp])


# --- data -------------------------------------------------------------------------------------


def load(url: str, master: str, patients: int, per_patient: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from phr_core import migrations
    from phr_core.db import Database
    from phr_core.identifiers import pseudonym_system, source_record_system
    from phr_core.services import get_service
    from phr_server.dates import instant, to_us
    from phr_server.indexing import extract
    from phr_server.models import (
        Compartment,
        DateIndex,
        ResourceVersion,
        StoredResource,
        TokenIndex,
        utcnow,
    )
    from phr_server.storage import Keyring, canonical, serialize

    migrations.upgrade(get_service("fhir"), url)
    db = Database(url)
    keyring = Keyring(master)
    rnd = random.Random(7)
    sample: dict[str, list[str]] = {}
    codes = ["29463-7", "8302-2", "9843-4", "39156-5", "8480-6"]
    started = time.perf_counter()
    total = 0
    batch: dict[str, list[dict]] = {"r": [], "v": [], "t": [], "d": [], "c": []}

    def flush(s):  # type: ignore[no-untyped-def]
        for key, table in (
            ("r", StoredResource.__table__),
            ("v", ResourceVersion.__table__),
            ("t", TokenIndex.__table__),
            ("d", DateIndex.__table__),
            ("c", Compartment.__table__),
        ):
            if batch[key]:
                s.execute(insert(table), batch[key])
                batch[key] = []

    def add(s, res: dict) -> None:  # type: ignore[no-untyped-def]
        now = utcnow()
        res["meta"] = {"versionId": "1", "lastUpdated": instant(now)}
        key_id = keyring.current(s, MUNI)
        body = serialize(res)
        sealed = keyring.seal(s, key_id, res["resourceType"], res["id"], 1, body)
        idx = extract(res)
        t, i = res["resourceType"], res["id"]
        batch["r"].append(
            dict(
                resource_type=t,
                id=i,
                version_id=1,
                last_updated=now,
                body=sealed,
                key_id=key_id,
                municipality=MUNI,
                content_mac=keyring.content_mac(s, key_id, canonical(res)),
                updated_us=to_us(now),
                sort_us=idx.sort_us,
            )
        )
        batch["v"].append(
            dict(resource_type=t, id=i, version_id=1, last_updated=now, key_id=key_id, body=sealed)
        )
        batch["t"] += [
            dict(resource_type=t, resource_id=i, param=p, system=sy, code=co)
            for p, sy, co in idx.tokens
        ]
        batch["d"] += [
            dict(resource_type=t, resource_id=i, param=p, start_us=a, end_us=b)
            for p, a, b in idx.dates
        ]
        batch["c"] += [dict(patient_id=p, resource_type=t, resource_id=i) for p in idx.patients]

    with db.session() as s:
        keyring.current(s, MUNI)
    for p in range(patients):
        pid = str(uuid.uuid4())
        code = f"code-{p:06d}"
        with db.session() as s:
            add(
                s,
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "gender": "female",
                    "birthDate": "2020-01-01",
                    "identifier": [{"system": pseudonym_system(MUNI), "value": code}],
                },
            )
            obs = []
            for k in range(per_patient - 1):
                oid = str(uuid.uuid4())
                obs.append(oid)
                add(
                    s,
                    {
                        "resourceType": "Observation",
                        "id": oid,
                        "status": "final",
                        "identifier": [
                            {"system": source_record_system(MUNI, "mch"), "value": f"{p}-{k}"}
                        ],
                        "category": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "vital-signs",
                                    }
                                ]
                            }
                        ],
                        "code": {
                            "coding": [
                                {"system": "http://loinc.org", "code": codes[k % len(codes)]}
                            ]
                        },
                        "subject": {"reference": f"Patient/{pid}"},
                        "effectiveDateTime": (
                            f"20{10 + k % 14:02d}-{1 + k % 12:02d}-{1 + k % 28:02d}"
                        ),
                        "valueQuantity": {
                            "value": round(rnd.uniform(2, 90), 1),
                            "unit": "kg",
                            "system": "http://unitsofmeasure.org",
                            "code": "kg",
                        },
                    },
                )
            flush(s)
        total += per_patient
        if p < 2000:
            sample[code] = [pid, *obs[:20]]
        if (p + 1) % 500 == 0:
            rate = total / (time.perf_counter() - started)
            print(f"  loaded {total:,} resources ({rate:,.0f}/s)", file=sys.stderr)
    db.dispose()
    return {"sample": sample, "load_s": time.perf_counter() - started, "resources": total}


# --- stand-ins for the IdP and the consent service ---------------------------------------------


def stand_ins(sample: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """The IdP's JWKS and token endpoint and the consent service's decision API, on loopback.
    Served by http.server with HTTP/1.1 keep-alive, as the consent service's gunicorn keeps
    connections (werkzeug's development server closes every one)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from joserfc.jwk import ECKey, KeySet

    key = ECKey.generate_key("P-256", parameters={"kid": "bench"}, private=True)
    jwks = KeySet([key]).as_dict(private=False)

    def answer(path: str) -> Any:
        if path == "/jwks":
            return jwks
        if path == "/token":  # the PHR server's own client-credentials token for the consent API
            return {"access_token": uuid.uuid4().hex, "token_type": "Bearer", "expires_in": 3600}
        if path.startswith("/api/v1/grants/"):
            gid = path.rsplit("/", 1)[-1]
            return {
                "id": gid,
                "status": "active",
                "subject": f"sub-{gid.removeprefix('g-')}",
                "client_id": "bench-app",
                "scopes": ["patient/*.rs"],
                "expires_at": int(time.time()) + 3600,
            }
        if path.startswith("/api/v1/subjects/") and path.endswith("/patients"):
            code = path.split("/")[4].removeprefix("sub-")
            return {"patients": [{"municipality": MUNI, "code": code, "relationship": "self"}]}
        return None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per answer, sent at once: headers and body written apart on a kept
        # connection would wait for the client's delayed ACK (Nagle), 40 ms a call.
        wbufsize = -1
        disable_nagle_algorithm = True

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            data = answer(self.path.split("?", 1)[0])
            body = json.dumps(data if data is not None else {"error": "not_found"}).encode()
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, key, f"http://127.0.0.1:{server.server_port}"


def mint(key, issuer: str, aud: str, code: str) -> str:  # type: ignore[no-untyped-def]
    from joserfc import jwt

    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": aud,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "sub": f"sub-{code}",
        "client_id": "bench-app",
        "scope": "patient/*.rs",
        "grant_id": f"g-{code}",
        CLAIM: encode_key(SECTOR_KEY),  # an app: it reads by its sector's ids (issue 14)
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "bench"}, claims, key)


# --- load generation ---------------------------------------------------------------------------


def client(port: int, jobs: list[tuple[str, str]], seconds: float, out: Any) -> None:
    conn = HTTPConnection("127.0.0.1", port)
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    i = random.randrange(len(jobs))
    while time.perf_counter() < end:
        path, token = jobs[i % len(jobs)]
        i += 1
        t0 = time.perf_counter()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        lat.append(time.perf_counter() - t0)
        if resp.status != 200:
            if not errors:  # the first failure says why; a run with errors is not a measurement
                print(f"error {resp.status} on {path}: {body[:300]!r}", file=sys.stderr)
            errors += 1
    out.put((lat, errors))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    port: int,
    jobs: list[tuple[str, str]],
    concurrency: int,
    seconds: float,
    server: list[int] | None = None,
    db_pids: Any = None,
) -> dict:
    """Requests/s and latency; with `server` pids also the server's CPU per request, the
    figure that holds on a shared machine (requests/s per core = 1000 / cpu_ms), and with
    `db_pids` (a function giving the PostgreSQL backend pids) theirs."""
    cpu0 = cpu_seconds(server or [])
    db0 = {pid: cpu_seconds([pid]) for pid in (db_pids() if db_pids else [])}
    load0 = os.getloadavg()[0]
    q: Any = mp.Queue()
    procs = [mp.Process(target=client, args=(port, jobs, seconds, q)) for _ in range(concurrency)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    time.sleep(SETTLE_S)
    cpu = cpu_seconds(server or []) - cpu0
    n = max(len(lat), 1)
    out = {
        "server_cpu_ms": cpu * 1000 / n,
        "rps": len(lat) / seconds,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "requests": len(lat),
        "errors": errors,
        "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
    }
    if db_pids:
        db = sum(cpu_seconds([pid]) - db0.get(pid, 0.0) for pid in set(db_pids()) | set(db0))
        out["db_cpu_ms"] = db * 1000 / n
    return out


def backends(url: str):  # type: ignore[no-untyped-def]
    """A function listing the pids of the PostgreSQL backends connected to `url`'s database
    (readable in /proc only when PostgreSQL runs on this machine), or None for SQLite."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)

    def pids() -> list[int]:
        with engine.connect() as c:
            return list(
                c.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )

    return pids


def summary(runs: list[dict]) -> dict:
    """The median of each figure over the rounds (and the lowest server CPU, the least
    disturbed by other work on the machine)."""
    out: dict[str, Any] = {}
    for key in ("rps", "p50_ms", "p99_ms", "server_cpu_ms", "db_cpu_ms"):
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = round(statistics.median(values), 3)
    out["server_cpu_ms_min"] = round(min(r["server_cpu_ms"] for r in runs), 3)
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["load"] = [min(r["load"][0] for r in runs), max(r["load"][1] for r in runs)]
    return out


def pooled_cpu(runs: list[dict]) -> float:
    """Server CPU ms per request over all these runs together."""
    return sum(r["server_cpu_ms"] * r["requests"] for r in runs) / max(
        sum(r["requests"] for r in runs), 1
    )


def rss_peak_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [pid] + [int(x) for x in out.stdout.split()]


def serve(
    env: dict[str, str], target: str, port: int, workers: int, threads: int = 1
) -> subprocess.Popen:
    cmd = [
        str(ROOT / ".venv/bin/gunicorn"),
        "--workers",
        str(workers),
        # as launcher.runner: gthread with PHR_FHIR_THREADS threads; 1: the sync worker
        *(["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []),
        "--bind",
        f"127.0.0.1:{port}",
        "--pythonpath",
        str(ROOT / "bench"),
        "--log-level",
        "warning",
        target,
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--per-patient", type=int, default=100)
    ap.add_argument("--database-url", default="", help="PostgreSQL server URL (default: SQLite)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="each measurement this many times")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--threads",
        type=int,
        default=4,
        help="threads per worker, as PHR_FHIR_THREADS (default 4: gthread, as `phr fhir serve` "
        "runs it, keeping connections alive); 1 is gunicorn's sync worker (a new connection "
        "per request)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument(
        "--state",
        default="",
        help="JSON file naming a loaded database (URL, master key, sample): used if it exists, "
        "written (and the database kept) if not, so the 1M-resource load is done once",
    )
    ap.add_argument("--load-only", action="store_true", help="load (and write --state), no runs")
    ap.add_argument("--only", default="", help="comma-separated subset of read,search,ceiling")
    ap.add_argument(
        "--people", type=int, default=100, help="distinct tokens (people) the clients cycle through"
    )
    args = ap.parse_args()

    from sqlalchemy import create_engine, text

    from phr_core.config import normalize_database_url

    tmp = Path(tempfile.mkdtemp(prefix="phr-bench-"))
    dbname = None
    state = Path(args.state) if args.state else None
    if state is not None and state.exists():
        saved = json.loads(state.read_text())
        url, master, data = saved["url"], saved["master"], saved["data"]
        print(f"reusing {data['resources']:,} resources in {url.split('@')[-1]}", file=sys.stderr)
    else:
        if args.database_url:
            server = normalize_database_url(args.database_url)
            dbname = "phr_bench_" + uuid.uuid4().hex[:8]
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{dbname}"'))
            url = server.rsplit("/", 1)[0] + "/" + dbname
        else:
            db_dir = state.parent if state is not None else tmp
            url = f"sqlite:///{db_dir / ('fhir-' + uuid.uuid4().hex[:8] + '.db')}"
        master = "bench-master-key-" + uuid.uuid4().hex
        print(
            f"loading {args.patients:,} × {args.per_patient} into {url.split('@')[-1]}",
            file=sys.stderr,
        )
        data = load(url, master, args.patients, args.per_patient)
        if state is not None:
            state.write_text(json.dumps({"url": url, "master": master, "data": data}))
            dbname = None  # kept for the next run
    if args.load_only:
        return
    only = set(args.only.split(",")) if args.only else {"read", "search", "ceiling"}
    srv, key, standin = stand_ins(data["sample"])
    port, cport = free_port(), free_port()
    env = dict(
        os.environ,
        PHR_VAR_DIR=str(tmp / "var"),
        PHR_FHIR_DATABASE_URL=url,
        PHR_FHIR_DATA_KEY=master,
        PHR_ISSUER=standin,
        PHR_CONSENT_URL=standin,
        PHR_CONSENT_API_URL=standin,  # the decision API (its own pool in production)
        PHR_FHIR_URL=f"http://127.0.0.1:{port}",
        PHR_LOG_LEVEL="WARNING",
    )
    aud = env["PHR_FHIR_URL"]
    codes = list(data["sample"])[: args.people]
    tokens = {c: mint(key, standin, aud, c) for c in codes}
    ids = for_key(SECTOR_KEY)  # the app's own ids of what it reads
    picks = [
        (data["sample"][c][1 + i % (len(data["sample"][c]) - 1)], tokens[c])
        for i, c in enumerate(codes * 20)
    ]
    reads = [(f"/Observation/{ids.out('Observation', oid)}", tok) for oid, tok in picks]
    searches = [
        (f"/Observation?patient=Patient/{ids.out('Patient', data['sample'][c][0])}&_count=20",
         tokens[c])
        for c in codes
    ]  # fmt: skip
    ceiling = [(f"/row/{oid}", "") for oid, _ in picks]
    order = list(range(len(reads)))
    random.Random(1).shuffle(order)
    reads = [reads[i] for i in order]

    results: dict[str, Any] = {
        "resources": data["resources"],
        "load_s": round(data["load_s"], 1),
        "workers": args.workers,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
    }
    # Both servers side by side; the kinds are measured in turn, round after round.
    fhir = serve(env, "phr_server.app:create_app()", port, args.workers, args.threads)
    bare = serve(env, "fhir_api:ceiling_app()", cport, args.workers, args.threads)
    kinds = [
        (name, p, jobs, proc)
        for name, p, jobs, proc in (
            ("ceiling", cport, ceiling, bare),
            ("read", port, reads, fhir),
            ("search", port, searches, fhir),
        )
        if name in only
    ]
    db_pids = backends(url)
    runs: dict[str, list[dict]] = {}
    try:
        for _, p, jobs, _ in kinds:  # warm caches (tokens, consent, data keys, pools)
            measure(p, jobs[:50], 1, 2.0)
        for r in range(args.rounds):
            for conc in (1, 8):
                for name, p, jobs, proc in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                    run = measure(p, jobs, conc, args.seconds, children(proc.pid), db_pids)
                    runs.setdefault(f"{name}_c{conc}", []).append(run)
                    print(f"round {r + 1}", name, conc, run, file=sys.stderr)
        results["fhir_peak_rss_mb"] = round(rss_peak_kb(children(fhir.pid)) / 1024, 1)
        results["ceiling_peak_rss_mb"] = round(rss_peak_kb(children(bare.pid)) / 1024, 1)
    finally:
        for proc in (fhir, bare):
            proc.send_signal(signal.SIGTERM)
        for proc in (fhir, bare):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # a starved machine: the figures still count
                print(f"gunicorn {proc.pid} did not stop within 30 s: killed", file=sys.stderr)
                proc.kill()  # its workers exit when they see their master gone
                proc.wait(10)
    srv.shutdown()
    results.update({key: summary(r) for key, r in runs.items()})
    for conc in (1, 8) if {"read", "ceiling"} <= only else ():
        per_round = [
            round(a["rps"] / b["rps"], 2)
            for a, b in zip(runs[f"read_c{conc}"], runs[f"ceiling_c{conc}"], strict=True)
        ]
        results[f"read_vs_ceiling_c{conc}"] = statistics.median(per_round)
        results[f"read_vs_ceiling_c{conc}_rounds"] = per_round
        # Pooled over the rounds (each kind ran as long in each): all reads over all ceiling
        # requests, and server CPU per read over the ceiling's, less swayed by one bad round.
        read, ceil = runs[f"read_c{conc}"], runs[f"ceiling_c{conc}"]
        results[f"read_vs_ceiling_c{conc}_pooled"] = round(
            sum(r["requests"] for r in read) / max(sum(r["requests"] for r in ceil), 1), 2
        )
        results[f"read_cpu_vs_ceiling_c{conc}_pooled"] = round(
            pooled_cpu(read) / pooled_cpu(ceil), 2
        )
    results["raw"] = runs
    print(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
        if dbname:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
