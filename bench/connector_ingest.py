"""Benchmark of the municipal connector on a synthetic city.

    .venv/bin/python bench/connector_ingest.py --residents 120000 [--server URL | --stub]

Phases, each in its own process so peak memory (max RSS) is per phase:
  synth  write the city's exports (register, MCH, vaccinations, 12 months of UKE claims)
  scan   read and parse every export file: source rows (CSV rows, UKE receipts) per second
  map    dry run: consent gate + pseudonymise + map + validate (fhir.resources R4B):
         resources mapped per second
  load   (with --server or --stub) end to end: transactions to the server, first load and
         the unchanged re-run; resources landed per second; with --phr-server also the
         server's CPU per entry and the peak RSS of its largest process

--server URL sends to a real PHR server (token from PHR_ISSUER with the connector's client
credentials); --stub starts the tests' stand-in (tests/connectors/stub_server.py) in a
separate process on loopback, which measures the connector's side only (the stub keeps
resources in a dict and validates nothing).
The first load sends everything; the re-run uses the connector database's sent cache
(`--db URL`, default a SQLite file next to the exports), so it maps and hashes but sends
nothing that is unchanged."""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "bench-pseudonym-key-0123456789abcdef"
CITY = "072028"


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its descendants (the server, gunicorn, its workers),
    including children that have exited."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0)
        todo += [c for c, pp in parent.items() if pp == pid]
    return total / tick


def _tree_peak_rss_mb(root: int) -> float:
    """The largest peak resident set (VmHWM) among a process and its live descendants: one
    server worker's high-water mark, which must stay flat as the input grows."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    peak, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        todo += [c for c, pp in parent.items() if pp == pid]
    return peak / 1024


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _inputs(folder: Path) -> list[tuple[Path, str]]:
    from connectors.source_registry import detect_source

    out = []
    for p in sorted(folder.iterdir()):
        src = detect_source(p)
        if src:
            out.append((p, src))
    return out


def phase_synth(args: argparse.Namespace) -> dict[str, object]:
    from connectors import synth

    t = time.perf_counter()
    synth.generate(args.residents, Path(args.out), KEY, seed=1, consent_share=args.consent_share)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    return {"seconds": time.perf_counter() - t, "bytes": size}


def phase_scan(args: argparse.Namespace) -> dict[str, object]:
    from connectors.source_registry import read_source

    rows = problems = 0
    t = time.perf_counter()
    for path, src in _inputs(Path(args.out)):
        for item in read_source(src, path):
            if type(item).__name__ == "Problem":
                problems += 1
            else:
                rows += 1
    dt = time.perf_counter() - t
    return {"rows": rows, "problems": problems, "seconds": dt, "rows_per_s": rows / dt}


def _connector(args: argparse.Namespace, sink, db=None):  # type: ignore[no-untyped-def]
    from connectors.consent import FileConsent
    from connectors.pipeline import Connector, Report
    from connectors.pseudonym import Pseudonymizer

    out = Path(args.out)
    return Connector(
        CITY,
        Pseudonymizer(KEY),
        FileConsent(out / "consents.json"),
        sink,
        register_path=out / "register.csv",
        report=Report(io.StringIO()),
        batch_size=args.batch_size,
        parallel=args.parallel,
        validate_resources=args.local_validation or sink is None,  # a dry run validates
        db=db,
    )


def _total(c, args: argparse.Namespace) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from connectors.pipeline import Summary

    total = Summary()
    t = time.perf_counter()
    for path, src in _inputs(Path(args.out)):
        total.add(c.run_file(path, src))
    dt = time.perf_counter() - t
    return {
        **vars(total),
        "seconds": dt,
        "resources_per_s": total.resources / dt,
        "rows_per_s": total.read / dt,
    }


def phase_map(args: argparse.Namespace) -> dict[str, object]:
    t = time.perf_counter()
    c = _connector(args, None)
    setup = time.perf_counter() - t
    return {"setup_seconds": setup, **_total(c, args)}


def phase_load(args: argparse.Namespace) -> dict[str, object]:
    from connectors.http import TokenSource
    from connectors.transport import FhirTransport
    from phr_core import migrations
    from phr_core.db import Database
    from phr_core.services import get_service

    url_db = args.db
    if not url_db:
        path = Path(args.out) / "connector-bench.db"
        path.unlink(missing_ok=True)
        url_db = f"sqlite:///{path}"
    migrations.upgrade(get_service("connector"), url_db)
    db = Database(url_db)

    def run(url: str, tokens: TokenSource | None, server_cpu=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
        """First load, then the unchanged re-run. On a shared machine wall time depends on
        the neighbours: the CPU seconds each side spent per resource are the steadier figure."""

        def timed(db_):  # type: ignore[no-untyped-def]
            c0, s0 = _cpu_self(), server_cpu() if server_cpu else 0.0
            out = _total(_connector(args, FhirTransport(url, tokens), db_), args)
            out["connector_cpu_s"] = _cpu_self() - c0
            if server_cpu:
                out["server_cpu_s"] = server_cpu() - s0
            n = int(out["created"]) + int(out["updated"]) + int(out["unchanged"])
            out["entries_acknowledged"] = n
            out["entries_per_s"] = n / float(out["seconds"])
            out["connector_cpu_ms_per_resource"] = (
                1000 * out["connector_cpu_s"] / max(int(out["resources"]), 1)
            )
            if server_cpu and n:
                out["server_cpu_ms_per_entry"] = 1000 * out["server_cpu_s"] / n
            return out

        first = timed(db)
        again = timed(db)
        out = {"first": first, "rerun": again, "rerun_speedup": first["seconds"] / again["seconds"]}
        if args.also_full:  # a re-run without the cache: everything is sent, all "unchanged"
            out["rerun_without_cache"] = _total(_connector(args, FhirTransport(url, tokens)), args)
        return out

    if args.stub:
        # The stub runs in its own process, so it does not compete for this one's GIL.
        stub = subprocess.Popen(
            [sys.executable, "-m", "tests.connectors.stub_server"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            url = (stub.stdout.readline() if stub.stdout else "").strip()
            return run(url, TokenSource(url, "connector-test", "s3cret"))
        finally:
            stub.terminate()
            stub.wait(30)
    if args.phr_server:
        return _with_phr_server(args, run)
    from connectors.client_key import ClientAssertion, load_signing_key
    from phr_core.config import load_settings

    s = load_settings()  # a real server: the connector's own key, private_key_jwt at the IdP
    client_id = s.option("PHR_CONNECTOR_CLIENT_ID")
    key = load_signing_key(s.secret("PHR_CONNECTOR_SIGNING_KEY"))
    tokens = TokenSource(s.issuer, client_id, signer=ClientAssertion(client_id, key))
    return run(args.server, tokens)


def _with_phr_server(args: argparse.Namespace, run):  # type: ignore[no-untyped-def]
    """Start the real PHR server (`phr fhir serve`: gunicorn, PHR_WORKERS workers, validation at
    the door on) on a fresh database (`--fhir-db`, e.g. a PostgreSQL server URL: a new database
    is created there and dropped after), with an IdP stand-in in this process that publishes a
    JWKS and issues the connector's client-credentials tokens."""
    import base64
    import os
    import socket
    import threading
    import urllib.request
    import uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from joserfc import jwt
    from joserfc.jwk import ECKey, KeySet
    from sqlalchemy import create_engine, text

    from connectors.http import TokenSource
    from phr_core import migrations
    from phr_core.config import normalize_database_url
    from phr_core.services import get_service

    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        fhir_port = sock.getsockname()[1]
    fhir_url = f"http://127.0.0.1:{fhir_port}"
    client, secret = "connector-072028", "bench-connector-secret"
    state: dict[str, str] = {}

    class Idp(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _json(self, body: object, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._json(KeySet([key]).as_dict(private=False))

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()
            if self.headers.get("Authorization") != want:
                self._json({"error": "invalid_client"}, 401)
                return
            now = int(time.time())
            claims = {
                "iss": state["iss"],
                "aud": fhir_url,
                "sub": client,
                "client_id": client,
                "scope": "system/*.write",
                "municipality": CITY,
                "iat": now,
                "exp": now + 3600,
                "jti": uuid.uuid4().hex,
            }
            tok = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, claims, key)
            self._json({"access_token": tok, "token_type": "Bearer", "expires_in": 3600})

    idp = ThreadingHTTPServer(("127.0.0.1", 0), Idp)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    state["iss"] = f"http://127.0.0.1:{idp.server_address[1]}"

    admin = None
    db_name = None
    if args.fhir_db and args.fhir_db.startswith("postgres"):
        server = normalize_database_url(args.fhir_db)
        db_name = "phr_connector_bench_" + uuid.uuid4().hex[:8]
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        fhir_db = server.rsplit("/", 1)[0] + "/" + db_name
    else:
        path = Path(args.out) / "fhir-bench.db"
        path.unlink(missing_ok=True)
        fhir_db = f"sqlite:///{path}"
    env = {
        **os.environ,
        "PHR_VAR_DIR": str(Path(args.out) / "var"),
        "PHR_FHIR_DATABASE_URL": fhir_db,
        "PHR_FHIR_PORT": str(fhir_port),
        "PHR_ISSUER": state["iss"],
        "PHR_WORKERS": str(args.workers),
        "PHR_LOG_LEVEL": "WARNING",
    }
    migrations.upgrade(get_service("fhir"), fhir_db)
    server_proc = subprocess.Popen(  # noqa: S603 - this venv's own `phr fhir serve`
        [str(Path(sys.executable).parent / "phr"), "fhir", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            try:
                # S310: the local FHIR server started above (127.0.0.1)
                with urllib.request.urlopen(fhir_url + "/healthz", timeout=1):  # noqa: S310 - see above
                    break
            except OSError:
                time.sleep(0.1)

        # healthz answers once one worker is up; the others may still be importing the app.
        # Wait until the server is idle, so the load's CPU figures hold no start-up.
        last = _tree_cpu(server_proc.pid)
        for _ in range(100):
            time.sleep(0.3)
            now = _tree_cpu(server_proc.pid)
            if now - last < 0.03:
                break
            last = now

        def server_cpu() -> float:
            """The server's processes plus, on PostgreSQL, its database backends."""
            total = _tree_cpu(server_proc.pid)
            if admin is not None:
                with admin.connect() as conn:
                    pids = conn.execute(
                        text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                        {"d": db_name},
                    ).scalars()
                    total += sum(_tree_cpu(pid) for pid in pids)
            return total

        result = run(fhir_url, TokenSource(state["iss"], client, secret), server_cpu)
        result["server_peak_rss_mb"] = _tree_peak_rss_mb(server_proc.pid)
        result["server"] = f"phr_server under gunicorn, {args.workers} workers, " + (
            "PostgreSQL" if db_name else "SQLite"
        )
        return result
    finally:
        os.killpg(server_proc.pid, 15)
        server_proc.wait(30)  # phr stops its gunicorn within its own bound
        idp.shutdown()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()


PHASES = {"synth": phase_synth, "scan": phase_scan, "map": phase_map, "load": phase_load}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--residents", type=int, default=120_000)
    ap.add_argument("--out", default=str(ROOT / "var" / "bench-city"))
    ap.add_argument("--consent-share", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=2, help="transactions in flight at once")
    ap.add_argument(
        "--local-validation",
        action="store_true",
        help="also run the connector's own R4B check when sending (off by default, as in "
        "`phr connector run`: the server validates every resource anyway)",
    )
    ap.add_argument("--server", help="PHR server base URL for the end-to-end phase")
    ap.add_argument(
        "--stub", action="store_true", help="end to end against the loopback stub server"
    )
    ap.add_argument(
        "--phr-server",
        action="store_true",
        help="end to end against the real PHR server (phr fhir serve)",
    )
    ap.add_argument("--fhir-db", help="database for --phr-server (a PostgreSQL server URL)")
    ap.add_argument("--workers", type=int, default=2, help="PHR server workers")
    ap.add_argument("--db", help="connector database URL for the load phase (default: SQLite)")
    ap.add_argument("--also-full", action="store_true", help="also time a re-run without cache")
    ap.add_argument("--skip-synth", action="store_true", help="reuse the exports already in --out")
    ap.add_argument("--only", choices=list(PHASES), help="run just this phase")
    ap.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        result = PHASES[args.phase](args)
        result["max_rss_mb"] = _maxrss_mb()
        print(json.dumps(result, default=str))
        return
    phases = ([] if args.skip_synth else ["synth"]) + ["scan", "map"]
    if args.server or args.stub or args.phr_server:
        phases.append("load")
    if args.only:
        phases = [args.only]
    results: dict[str, object] = {"residents": args.residents}
    for ph in phases:
        cmd = [sys.executable, __file__, "--phase", ph, *sys.argv[1:]]
        # S603: this script itself (sys.executable), for one phase
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)  # noqa: S603 - see above
        results[ph] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(ph, json.dumps(results[ph], default=str), flush=True)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
