"""Benchmark of the OpenID provider (idp/) under its production WSGI server, side by side with
panva's node-oidc-provider yardstick (../shared/peers/oidc-node/) in the same run.

    .venv/bin/python bench/idp.py                       # SQLite, 20 s per scenario, peer on
    .venv/bin/python bench/idp.py --database-url postgresql://postgres@127.0.0.1:55432/postgres
    .venv/bin/python bench/idp.py --seconds 5 --no-peer --json /tmp/idp-bench.json

Scenarios, each at concurrency 1 and 8 for a fixed time window (after a warm-up), bounded in
operations (--max-ops) and in time (every request has a timeout):
  code     full authorization-code flow with PKCE S256: authorize → sign-in form → consent form
           → back to the client with a code → token → userinfo; a new cookie jar and a new
           connection per flow (as the yardstick's figures were measured); `prompt=consent`
           so that both providers show the consent page every time
  refresh  refresh_token grants; every worker rotates its own refresh-token chain
  cc       client_credentials grants (ours only: the yardstick's clients have no such grant)
  floor    (not by default) GET /healthz on ours: what gunicorn + Flask cost per request with
           no IdP logic and no database, the floor under every IdP request

What is set up: a fresh temporary PHR_VAR_DIR; a fresh database (SQLite in that folder, or a new
database on the PostgreSQL server named by --database-url, dropped afterwards); the IdP's
migrations; its signing keys (idp.app.prepare); a confidential client `bench-rp`
(client_secret_basic, redirect http://127.0.0.1:4099/cb, scopes `openid offline_access`) and a
client-credentials client `bench-cc`; then gunicorn with exactly the command line of
`phr idp serve` (launcher.runner.gunicorn_command) and PHR_WORKERS workers.

The load generator is plain Python: http.client with a small cookie jar, worker threads spread
over a few forked processes (so that it is not capped by one GIL). The same generator, the same
concurrency and the same machine drive both providers, one after the other, in one run.

Reported per scenario: operations/s, p50/p99 latency of one operation, server CPU time (all
server processes: gunicorn master + workers, plus the PostgreSQL server's processes when it is
used; the node process for the yardstick) per operation and operations per server CPU-second,
the load generator's CPU, and peak RSS of the servers and of the load generator.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PEER_SRC = ROOT.parent / "shared" / "peers" / "oidc-node"
REDIRECT = "http://127.0.0.1:4099/cb"
OURS_CLIENT = ("bench-rp", "bench-secret-" + "b" * 32)
CC_CLIENT = ("bench-cc", "bench-cc-secret-" + "c" * 32)
PEER_CLIENT = ("bench-rp", "bench-secret")
CC_SCOPE = "system/*.write"
DEMO_PEOPLE = 20  # idp.endpoints.interaction.DEMO_PEOPLE
REQUEST_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- a small HTTP/1.1 client: keep-alive when the server allows it, cookies by path -----------


class Jar:
    """Cookies of one browser: (name, path) → value; expired ones are dropped."""

    def __init__(self) -> None:
        self.cookies: dict[tuple[str, str], str] = {}

    def store(self, set_cookies: list[str]) -> None:
        for line in set_cookies:
            pair, *attrs = line.split(";")
            name, _, value = pair.partition("=")
            name, value, path, expired = name.strip(), value.strip(), "/", False
            for a in attrs:
                k, _, v = a.strip().partition("=")
                k = k.lower()
                if k == "path" and v:
                    path = v
                elif k == "max-age":
                    expired = expired or (v.lstrip("-").isdigit() and int(v) <= 0)
                elif k == "expires":
                    with contextlib.suppress(TypeError, ValueError):
                        expired = expired or parsedate_to_datetime(v) <= datetime.now(UTC)
            if expired or not value:
                self.cookies.pop((name, path), None)
            else:
                self.cookies[(name, path)] = value

    def header(self, path: str) -> str:
        path = path.split("?", 1)[0]
        hits = [
            (p, n, v)
            for (n, p), v in self.cookies.items()
            if path == p or path.startswith(p if p.endswith("/") else p + "/")
        ]
        hits.sort(key=lambda h: -len(h[0]))
        return "; ".join(f"{n}={v}" for _, n, v in hits)


class Conn:
    """One client connection (re-opened when the server closes it, as gunicorn's sync workers
    do after every response)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.c = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
        self.used = False
        self.connects = 0

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(headers or {})
        for attempt in (0, 1):
            try:
                if self.c.sock is None:
                    self.connects += 1
                    self.used = False
                self.c.request(method, path, body=body, headers=headers)
                resp = self.c.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.c.close()
                else:
                    self.used = True
                return resp.status, resp.msg, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server had already closed: retry once, fresh.
                self.c.close()
                if attempt or not self.used:
                    raise
                self.used = False
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.c.close()


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class FlowError(Exception):
    pass


# --- the two providers' browser side ---------------------------------------------------------


@dataclass
class Target:
    """One provider: where it is and how its pages are answered."""

    name: str
    host: str
    port: int
    client: tuple[str, str]
    scope: str
    authorization_path: str = ""
    token_path: str = ""
    userinfo_path: str = ""
    issuer: str = ""
    pids: list[int] = field(default_factory=list)  # filled by the parent for CPU accounting

    def discover(self) -> None:
        url = f"http://{self.host}:{self.port}/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=10) as resp:
            meta = json.load(resp)
        self.issuer = meta["issuer"]
        self.authorization_path = urlsplit(meta["authorization_endpoint"]).path
        self.token_path = urlsplit(meta["token_endpoint"]).path
        self.userinfo_path = urlsplit(meta["userinfo_endpoint"]).path

    def answer(self, path: str, html: str, person: int) -> tuple[str, dict[str, str]]:
        """The form post that answers the page at `path`: (action path, fields)."""
        raise NotImplementedError


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class Ours(Target):
    """Our IdP: the development sign-in form (POST /login/dev with a demo citizen number) and
    the consent form (decision=allow), as tests/idp/conftest.py drives them."""

    def answer(self, path: str, html: str, person: int) -> tuple[str, dict[str, str]]:
        parts = urlsplit(path)
        m = CSRF_RE.search(html)
        if m is None:
            raise FlowError(f"no csrf field on {parts.path}")
        req = parse_qs(parts.query).get("req", [""])[0]
        if parts.path == "/login":
            return "/login/dev", {"csrf": m.group(1), "req": req, "person": str(person)}
        if parts.path == "/consent":
            return "/consent", {"csrf": m.group(1), "req": req, "decision": "allow"}
        raise FlowError(f"unexpected page {parts.path}")


FORM_RE = re.compile(r"<form\b([^>]*)>([\s\S]*?)</form>", re.I)
INPUT_RE = re.compile(r"<input\b([^>]*)>", re.I)


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf"\b{name}\s*=\s*(\"([^\"]*)\"|'([^']*)')", tag, re.I)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(3)


class Peer(Target):
    """node-oidc-provider (login.mjs's contract): submit the first form of each page, with the
    `login` input set to an account name and every other input's value copied."""

    def answer(self, path: str, html: str, person: int) -> tuple[str, dict[str, str]]:
        m = FORM_RE.search(html)
        if m is None:
            raise FlowError(f"no form on {path}")
        fields: dict[str, str] = {}
        for tag in INPUT_RE.findall(m.group(2)):
            name = _attr(tag, "name")
            if name:
                fields[name] = (
                    f"bench-user-{person}"
                    if name == "login"
                    else unescape(_attr(tag, "value") or "")
                )
        action = urljoin(path, unescape(_attr(m.group(1), "action") or path))
        return action, fields


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_flow(t: Target, person: int) -> dict:
    """One full authorization-code flow with a new browser; returns the token response."""
    jar, conn = Jar(), Conn(t.host, t.port)
    try:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": t.client[0],
            "redirect_uri": REDIRECT,
            "scope": t.scope,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "consent",
        }
        path = t.authorization_path + "?" + urlencode(params)
        method, body = "GET", None
        code = None
        for _ in range(20):
            headers = {"Cookie": jar.header(path)} if jar.cookies else {}
            if body is not None:
                headers.update(FORM)
            status, msg, data = conn.request(method, path, body, headers)
            jar.store(msg.get_all("Set-Cookie") or [])
            if status in (301, 302, 303, 307) and msg.get("Location"):
                loc = msg["Location"]
                if loc.startswith(REDIRECT):
                    q = parse_qs(urlsplit(loc).query)
                    if "code" not in q:
                        raise FlowError(f"no code: {loc[:200]}")
                    if q.get("state") != [state] or q.get("iss") != [t.issuer]:
                        raise FlowError("state or iss mismatch")
                    code = q["code"][0]
                    break
                nxt = urlsplit(urljoin(f"http://{t.host}:{t.port}{path}", loc))
                path = nxt.path + ("?" + nxt.query if nxt.query else "")
                method, body = "GET", None
                continue
            if status == 200:
                action, fields = t.answer(path, data.decode("utf-8", "replace"), person)
                path, method, body = action, "POST", urlencode(fields).encode()
                continue
            raise FlowError(f"HTTP {status} at {path.split('?')[0]}: {data[:200]!r}")
        if code is None:
            raise FlowError("no redirect back to the client")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        headers = {**FORM, "Authorization": basic_auth(*t.client)}
        status, _, data = conn.request("POST", t.token_path, urlencode(form).encode(), headers)
        if status != 200:
            raise FlowError(f"token HTTP {status}: {data[:200]!r}")
        tokens = json.loads(data)
        if "id_token" not in tokens or "access_token" not in tokens:
            raise FlowError(f"token response lacks tokens: {sorted(tokens)}")
        headers = {"Authorization": "Bearer " + tokens["access_token"]}
        status, _, data = conn.request("GET", t.userinfo_path, None, headers)
        if status != 200 or "sub" not in json.loads(data):
            raise FlowError(f"userinfo HTTP {status}: {data[:200]!r}")
        return tokens
    finally:
        conn.close()


# --- workers ----------------------------------------------------------------------------------


@dataclass
class Window:
    start: float  # time.time() when measuring starts (after warm-up)
    end: float
    max_ops: int  # per worker thread


def _worker(t: Target, kind: str, win: Window, wid: int, out: list, errs: list) -> None:
    """Run operations until the window closes; record the latency of those that started and
    finished inside it."""
    rng = secrets.SystemRandom()
    conn = Conn(t.host, t.port)
    auth = {**FORM, "Authorization": basic_auth(*(CC_CLIENT if kind == "cc" else t.client))}
    rt = None
    lat: list[float] = []
    n_err = 0
    first_err = ""
    while len(lat) < win.max_ops:
        now = time.time()
        if now >= win.end:
            break
        try:
            if kind == "refresh" and rt is None:
                rt = code_flow(t, rng.randint(1, DEMO_PEOPLE)).get("refresh_token")
                if not rt:
                    raise FlowError("no refresh_token from the code flow")
                continue
            t0 = time.perf_counter()
            if kind == "code":
                code_flow(t, rng.randint(1, DEMO_PEOPLE))
            elif kind == "refresh":
                body = urlencode({"grant_type": "refresh_token", "refresh_token": rt}).encode()
                status, _, data = conn.request("POST", t.token_path, body, auth)
                if status != 200:
                    rt = None
                    raise FlowError(f"refresh HTTP {status}: {data[:200]!r}")
                rt = json.loads(data)["refresh_token"]
            elif kind == "floor":
                status, _, data = conn.request("GET", "/healthz")
                if status != 200:
                    raise FlowError(f"healthz HTTP {status}")
            else:
                body = urlencode({"grant_type": "client_credentials", "scope": CC_SCOPE}).encode()
                status, _, data = conn.request("POST", t.token_path, body, auth)
                if status != 200 or "access_token" not in json.loads(data):
                    raise FlowError(f"client_credentials HTTP {status}: {data[:200]!r}")
            dt = time.perf_counter() - t0
            if now >= win.start and time.time() <= win.end:
                lat.append(dt)
        except (FlowError, OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            if now >= win.start:
                n_err += 1
                first_err = first_err or f"{type(exc).__name__}: {exc}"[:300]
            conn.close()
            conn = Conn(t.host, t.port)
            time.sleep(0.01)
    conn.close()
    out.extend(lat)
    errs.append((n_err, first_err))


def _loadgen_process(t: Target, kind: str, win: Window, threads: int, pipe) -> None:  # type: ignore[no-untyped-def]
    out: list[float] = []
    errs: list = []
    ts = [
        threading.Thread(target=_worker, args=(t, kind, win, i, out, errs), daemon=True)
        for i in range(threads)
    ]
    for th in ts:
        th.start()
    # CPU of this process inside the window only.
    time.sleep(max(0.0, win.start - time.time()))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(max(0.0, win.end - time.time()))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    for th in ts:
        th.join(REQUEST_TIMEOUT_S * 2 + 60)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    pipe.send(
        {
            "lat": out,
            "errors": sum(e[0] for e in errs),
            "first_error": next((e[1] for e in errs if e[1]), ""),
            "cpu_s": cpu,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    )
    pipe.close()


# --- process accounting (/proc) ---------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, float] | None:
    """(ppid, comm, cpu seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[1]), comm, (int(rest[11]) + int(rest[12])) / CLK_TCK


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                parent[int(d)] = st[0]
    found, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return [p for p in found if p in parent or p == root]


def postgres_backends(dbname: str) -> list[int]:
    """PostgreSQL backend processes serving `dbname` (their title names the database), so that
    other databases on a shared server are not counted; the server's shared background
    processes (WAL writer, checkpointer) are left out too."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                title = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if title.startswith("postgres:") and f" {dbname} " in title:
                out.append(int(d))
    return out


def cpu_of(pids: list[int]) -> dict[int, float]:
    res = {}
    for p in pids:
        st = _stat(p)
        if st:
            res[p] = st[2]
    return res


def hwm_kb(pid: int) -> int:
    """Peak resident set size of a process (VmHWM), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- running one scenario ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def run_scenario(
    t: Target, kind: str, concurrency: int, args: argparse.Namespace, dbname: str | None
) -> dict:
    procs = max(1, min(concurrency, args.loadgen_procs))
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    start = time.time() + 0.3 + args.warmup
    win = Window(start, start + args.seconds, args.max_ops)
    ctx = mp.get_context("fork")
    children = []
    for n in per:
        a, b = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_loadgen_process, args=(t, kind, win, n, b), daemon=True)
        p.start()
        children.append((p, a))
    server_pids = tree(t.pids[0]) if t.pids else []
    time.sleep(max(0.0, win.start - time.time()))
    c0 = cpu_of(server_pids + (postgres_backends(dbname) if dbname else []))
    time.sleep(max(0.0, win.end - time.time()))
    extra_pids = postgres_backends(dbname) if dbname else []
    c1 = cpu_of(server_pids + extra_pids)
    results = []
    for p, a in children:
        if a.poll(REQUEST_TIMEOUT_S * 2 + 90):
            results.append(a.recv())
        p.join(10)
        if p.is_alive():
            p.kill()
    lat = [x for r in results for x in r["lat"]]
    server_cpu = sum(c1[p] - c0[p] for p in server_pids if p in c0 and p in c1)
    # A backend that started inside the window counts with all its CPU time.
    db_cpu = sum(c1[p] - c0.get(p, 0.0) for p in extra_pids if p in c1)
    n = len(lat)
    rate = n / args.seconds
    total_cpu = server_cpu + db_cpu
    return {
        "target": t.name,
        "scenario": kind,
        "concurrency": concurrency,
        "seconds": args.seconds,
        "ops": n,
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "ops_per_s": rate,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
        "server_cpu_s": server_cpu,
        "db_cpu_s": db_cpu,
        "server_cpu_ms_per_op": total_cpu / n * 1000 if n else float("nan"),
        "ops_per_server_cpu_s": n / total_cpu if total_cpu else float("nan"),
        "server_cores_busy": total_cpu / args.seconds,
        "loadgen_cpu_s": sum(r["cpu_s"] for r in results),
        "loadgen_procs": procs,
        "loadgen_peak_rss_mb": sum(r["maxrss_kb"] for r in results) / 1024,
    }


# --- setting up our IdP -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


class OurIdP:
    """A fresh IdP (var folder, database, keys, clients) under gunicorn."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="phr-bench-idp-"))
        self.port = free_port()
        self.pg_admin_url: str | None = None
        self.pg_name: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log = None

    def _database_url(self) -> str:
        url = self.args.database_url
        if not url:
            return f"sqlite:///{self.tmp / 'var' / 'idp.db'}"
        from sqlalchemy import create_engine, text

        from phr_core.config import normalize_database_url

        url = normalize_database_url(url)
        self.pg_admin_url = url
        self.pg_name = "phr_bench_" + uuid.uuid4().hex[:12]
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.pg_name}"'))
        admin.dispose()
        return url.rsplit("/", 1)[0] + "/" + self.pg_name

    def _source(self) -> Path:
        """The code to measure: the working tree, or (--snapshot, the default) a copy of the
        committed HEAD, so that edits in progress cannot change or break a run."""
        if self.args.src:
            return Path(self.args.src).resolve()
        if not self.args.snapshot:
            return ROOT
        src = self.tmp / "src"
        src.mkdir()
        git = ["git", "archive", "HEAD"]
        # S603: `git archive HEAD` of this repository
        archive = subprocess.run(git, cwd=ROOT, capture_output=True, check=True).stdout  # noqa: S603 - see above
        # S603, S607: `tar` from PATH unpacks that archive into a temporary directory
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)  # noqa: S603, S607 - see above
        return src

    def start(self) -> Target:
        self.src = self._source()
        sys.path.insert(0, str(self.src))
        from idp.app import prepare
        from idp.clients import upsert_static
        from launcher.runner import gunicorn_command
        from phr_core import migrations
        from phr_core.config import load_settings
        from phr_core.db import Database
        from phr_core.services import get_service

        db_url = self._database_url()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PHR_")},
            "PHR_ENV": "development",  # the dev sign-in form exists only in development mode
            "PHR_VAR_DIR": str(self.tmp / "var"),
            "PHR_IDP_DATABASE_URL": db_url,
            "PHR_IDP_PORT": str(self.port),
            "PHR_WORKERS": str(self.args.workers),
            "PHR_HOST": "127.0.0.1",
            # Grants kept at the IdP: the benchmark measures the IdP alone, not the consent
            # service (ignored by code that has no such setting).
            "PHR_IDP_GRANT_STORE": self.args.grant_store,
            "PYTHONPATH": str(self.src),
        }
        settings = load_settings(env)
        spec = get_service("idp")
        # Secrets first (so the workers never race to create them), then the schema.
        for sec in spec.secrets:
            settings.secret(sec.env)
        migrations.upgrade(spec, settings.database_urls["idp"])
        prepare(settings)  # signing keys (nothing else in `phr idp serve` makes them)
        db = Database(settings.database_urls["idp"])
        try:
            with db.session() as s:
                upsert_static(
                    s,
                    {
                        "client_id": OURS_CLIENT[0],
                        "client_name": "Benchmark RP",
                        "redirect_uris": [REDIRECT],
                        "grant_types": ["authorization_code", "refresh_token"],
                        "token_endpoint_auth_method": "client_secret_basic",
                        "scope": "openid offline_access",
                    },
                    OURS_CLIENT[1],
                )
                upsert_static(
                    s,
                    {
                        "client_id": CC_CLIENT[0],
                        "client_name": "Benchmark system client",
                        "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_basic",
                        "scope": CC_SCOPE,
                    },
                    CC_CLIENT[1],
                )
        finally:
            db.dispose()
        import launcher.runner as runner

        if hasattr(runner, "Target"):  # newer runner: it serves Targets (services and helpers)
            cmd = gunicorn_command(runner.Target.of(spec, settings), settings)
        else:
            cmd = gunicorn_command(spec, settings)
        self.cmd = cmd
        self.log = open(self.tmp / "gunicorn.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603 - gunicorn_command() for the IdP under test
            cmd, env=env, cwd=str(self.src), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{self.port}/readyz", self.proc)
        except SystemExit:
            self.log.flush()
            print((self.tmp / "gunicorn.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        t = Ours(
            "ours", "127.0.0.1", self.port, OURS_CLIENT, "openid offline_access",
            pids=[self.proc.pid],
        )  # fmt: skip
        t.discover()
        return t

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        if self.log:
            self.log.close()
        if self.pg_name and self.pg_admin_url:
            from sqlalchemy import create_engine, text

            admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            admin.dispose()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


class PeerServer:
    """node-oidc-provider from ../shared/peers/oidc-node (copied to a temporary folder and
    installed with `npm ci` when it has no node_modules)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None

    def start(self) -> Target:
        src = Path(self.args.peer_dir)
        if (src / "node_modules" / "oidc-provider").exists():
            self.dir = src
        else:
            self.dir = Path(tempfile.gettempdir()) / "phr-bench-oidc-node"
            if not (self.dir / "node_modules" / "oidc-provider").exists():
                shutil.rmtree(self.dir, ignore_errors=True)
                shutil.copytree(src, self.dir)
                for p in [self.dir, *self.dir.rglob("*")]:
                    p.chmod(p.stat().st_mode | 0o200)
                # S607: `npm ci` from PATH, in the bench's copy of the peer IdP
                subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=self.dir, check=True)  # noqa: S607 - see above
        self.proc = subprocess.Popen(  # noqa: S603 - the peer IdP's node server, fixed argv
            # S607: node from PATH
            ["node", "server.mjs", "--port", str(self.port), "--host", "127.0.0.1"],  # noqa: S607 - see above
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.port}/.well-known/openid-configuration", self.proc)
        t = Peer(
            "peer", "127.0.0.1", self.port, PEER_CLIENT, "openid offline_access",
            pids=[self.proc.pid],
        )  # fmt: skip
        t.discover()
        return t

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


# --- report -----------------------------------------------------------------------------------


def fmt(x: float, nd: int = 1) -> str:
    return "–" if math.isnan(x) else f"{x:,.{nd}f}"


def table(results: list[dict]) -> str:
    by = {(r["target"], r["scenario"], r["concurrency"]): r for r in results}
    keys = sorted(
        {(r["scenario"], r["concurrency"]) for r in results},
        key=lambda k: (["code", "refresh", "cc", "floor"].index(k[0]), k[1]),
    )
    head = (
        "| scenario | conc | ours /s | ours p50 ms | ours p99 ms | peer /s | peer p50 ms "
        "| peer p99 ms | ours/peer | ours CPU ms/op | ours ops/CPU-s | peer CPU ms/op "
        "| peer ops/CPU-s | errors (ours/peer) |"
    )
    lines = [head, "|" + "---|" * 14]
    for sc, c in keys:
        o, p = by.get(("ours", sc, c)), by.get(("peer", sc, c))
        g = lambda r, k: r[k] if r else math.nan  # noqa: E731
        ratio = g(o, "ops_per_s") / g(p, "ops_per_s") if o and p and p["ops_per_s"] else math.nan
        errs = f"{o['errors'] if o else '–'}/{p['errors'] if p else '–'}"
        lines.append(
            f"| {sc} | {c} | {fmt(g(o, 'ops_per_s'))} | {fmt(g(o, 'p50_ms'))} "
            f"| {fmt(g(o, 'p99_ms'))} | {fmt(g(p, 'ops_per_s'))} | {fmt(g(p, 'p50_ms'))} "
            f"| {fmt(g(p, 'p99_ms'))} | {fmt(ratio, 2)} | {fmt(g(o, 'server_cpu_ms_per_op'), 2)} "
            f"| {fmt(g(o, 'ops_per_server_cpu_s'), 0)} | {fmt(g(p, 'server_cpu_ms_per_op'), 2)} "
            f"| {fmt(g(p, 'ops_per_server_cpu_s'), 0)} | {errs} |"
        )
    return "\n".join(lines)


def _git(*argv: str) -> str:
    """The code under test (HEAD and uncommitted changes), recorded with the results."""
    try:
        # S603, S607: `git` from PATH, with the fixed subcommands of this file
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10)  # noqa: S603, S607 - see above
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before it")
    ap.add_argument("--max-ops", type=int, default=200_000, help="cap per worker and scenario")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    ap.add_argument("--scenarios", default="code,refresh,cc")
    ap.add_argument("--workers", type=int, default=2, help="PHR_WORKERS for gunicorn")
    ap.add_argument("--loadgen-procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--database-url", help="PostgreSQL server; a fresh database is made on it")
    ap.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the node-oidc-provider yardstick (default: when node is installed)",
    )
    ap.add_argument("--peer-dir", default=str(PEER_SRC))
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary var folder")
    ap.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure a copy of the committed HEAD (default) rather than the working tree",
    )
    ap.add_argument("--src", help="measure the code in this folder (a patched copy, for A/B)")
    ap.add_argument("--grant-store", default="local", help="PHR_IDP_GRANT_STORE for the IdP")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    kinds = [k for k in args.scenarios.split(",") if k]
    peer_on = args.peer if args.peer is not None else shutil.which("node") is not None

    ours = OurIdP(args)
    peer = PeerServer(args) if peer_on else None
    results: list[dict] = []
    meta: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": sys.version.split()[0],
        "database": "postgresql" if args.database_url else "sqlite",
        "args": vars(args),
        "git_head": _git("rev-parse", "HEAD"),
        "git_dirty_idp": _git("status", "--short", "--", "idp", "phr_core").splitlines(),
        "measured": (
            f"code in {args.src}"
            if args.src
            else "committed HEAD (snapshot)"
            if args.snapshot
            else "working tree"
        ),
    }
    try:
        t_ours = ours.start()
        meta["server_cmd"] = " ".join(ours.cmd)
        print(f"ours: {t_ours.issuer} (gunicorn, {args.workers} workers, {meta['database']}; "
              f"{meta['measured']} at {meta['git_head'][:10]}; {len(meta['git_dirty_idp'])} "
              "uncommitted files in idp/ and phr_core/)")  # fmt: skip
        t_peer = peer.start() if peer else None
        if t_peer:
            # S607: `node --version` from PATH
            ver = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout  # noqa: S607 - see above
            meta["node"] = ver.strip()
            print(f"peer: {t_peer.issuer} (node-oidc-provider, node {meta['node']})")
        # Sanity: one flow each before measuring.
        for t in filter(None, [t_ours, t_peer]):
            try:
                tokens = code_flow(t, 1)
            except (FlowError, OSError) as exc:
                if t is t_ours and ours.log:
                    ours.log.flush()
                    log = (ours.tmp / "gunicorn.log").read_text(errors="replace")
                    print(log[-3000:], file=sys.stderr)
                raise SystemExit(f"{t.name}: the first flow failed: {exc}") from None
            if "refresh_token" not in tokens:
                raise SystemExit(f"{t.name}: no refresh token from the first flow")
        for kind in kinds:
            for c in levels:
                for t in filter(None, [t_ours, t_peer]):
                    if kind in ("cc", "floor") and t.name == "peer":
                        continue
                    r = run_scenario(t, kind, c, args, ours.pg_name if t.name == "ours" else None)
                    r["loadavg_after"] = os.getloadavg()
                    results.append(r)
                    print(
                        f"{t.name:4} {kind:7} c={c}: {r['ops_per_s']:8.1f}/s "
                        f"p50 {r['p50_ms']:6.1f} ms p99 {r['p99_ms']:6.1f} ms "
                        f"server CPU {r['server_cpu_ms_per_op']:.2f} ms/op "
                        f"(+db {r['db_cpu_s']:.1f}s) loadgen CPU {r['loadgen_cpu_s']:.1f}s "
                        f"errors {r['errors']} {r['first_error'][:120]}",
                        flush=True,
                    )
        meta["server_peak_rss_mb"] = {
            "ours": sum(hwm_kb(p) for p in tree(t_ours.pids[0])) / 1024,
            "ours_per_process": {p: hwm_kb(p) / 1024 for p in tree(t_ours.pids[0])},
        }
        if t_peer:
            meta["server_peak_rss_mb"]["peer"] = hwm_kb(t_peer.pids[0]) / 1024
        meta["loadgen_parent_peak_rss_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        meta["loadgen_peak_rss_mb_per_scenario_max"] = max(
            (r["loadgen_peak_rss_mb"] for r in results), default=0
        )
    finally:
        if peer:
            peer.stop()
        ours.stop()
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["loadavg_after"] = os.getloadavg()
    print()
    print(table(results))
    rss = meta.get("server_peak_rss_mb", {})
    print(
        f"\npeak RSS: ours {fmt(rss.get('ours', float('nan')))} MB (gunicorn master + "
        f"{args.workers} workers), peer {fmt(rss.get('peer', float('nan')))} MB (one node "
        f"process); load generator: parent {fmt(meta.get('loadgen_parent_peak_rss_mb', 0))} MB, "
        f"workers up to {fmt(meta.get('loadgen_peak_rss_mb_per_scenario_max', 0))} MB in total"
    )
    print(
        "CPU ms/op = server CPU time per operation (ours: gunicorn master + workers"
        + (" + the PostgreSQL backends of its database" if args.database_url else "")
        + "; peer: node); ops/CPU-s = operations per server CPU-second (per-core throughput)."
    )
    print(f"{os.cpu_count()} CPUs; load average before {meta['loadavg_before']}, after "
          f"{meta['loadavg_after']}: other processes may share the cores.")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
