"""The whole platform under a mixed load: `phr dev run` on PostgreSQL, driven from outside over
loopback, first to find its capacity, then held at a fraction of it to see whether it stays up.

    .venv/bin/python bench/platform_load.py                 # capacity search + 30 min at 80 %
    .venv/bin/python bench/platform_load.py --minutes 2     # a short look
    .venv/bin/python bench/platform_load.py --capacity 12 --minutes 5   # skip the search

What runs: a fresh PHR_VAR_DIR, a fresh database on the PostgreSQL server of --database-url
(dropped afterwards), and `phr dev run` (every service under gunicorn with PHR_WORKERS workers,
the demo data and the card sandbox) on free loopback ports.

The mix, by weight of the offered operations per second:
  app_read     an app's `GET /Patient/{launch patient}` with its access token (PHR server,
               which asks the consent decision API through its ≤ 5 s cache)
  app_search   an app's `GET /Immunization?patient=…` or `GET /Observation?patient=…`
  refresh      an app's refresh_token grant at the IdP (which re-checks the grant with the
               consent service every time)
  portal_page  a portal page of a signed-in browser (home, children, vaccinations, growth,
               records, apps, sources, notices): each reads the PHR server with the person's
               token, which asks the consent service in turn
  sign_in      a portal browser signs in afresh with the sandbox's virtual My Number card
               (authorize → card session → card signature → callback), after signing out
and beside the offered rate, at fixed intervals:
  revoke       the sandbox's second guardian revokes her app's grant in the portal; the app's
               token must be refused within the documented bound (5 s); then she signs in to
               the app again and consents (a new grant)
  connector    `phr connector run` of the sandbox's export files (conditional updates)

The load is open-loop: operations are scheduled at the offered rate and each one's latency
counts from its scheduled time (queueing in the generator included), so an overloaded platform
cannot hide behind a slower generator. An error is any 5xx, any connection failure or timeout,
or an unexpected answer; a 403 after a revocation is expected and is not one.

Capacity search: rates step up (--start-rate, ×--rate-factor) for --step-seconds each until the
p99 of a step reaches 200 ms (--p99-limit) or a step has errors; the capacity is the last rate
that met both.
Then the hold: --hold-fraction of it for --minutes, with p99, error count and each service's
RSS (gunicorn master + workers, from /proc) sampled every minute. Results go to --json and
the plot to --plot. Every loop is bounded in time and count; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import json
import os
import platform as pyplatform
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests
import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from idp.card.profile import AUTH, signed_data  # noqa: E402
from idp.card.vcard import VirtualCard  # noqa: E402
from launcher.sandbox import AUTH_PIN  # noqa: E402

PHR = [sys.executable, "-m", "launcher.cli"]
TIMEOUT_S = 15.0
P99_LIMIT_MS = 200.0
APP_ID = "demo-vaccination-app"  # the dev IdP's demo app (idp/demo.py)
APP_REDIRECT = "http://127.0.0.1:8010/callback"  # never fetched: the code is read off the redirect
BODY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS|body-measurement"
APP_SCOPE = (
    "openid offline_access launch/patient patient/Patient.rs patient/Immunization.rs "
    f"patient/Observation.rs?category={BODY}"
)
WEIGHTS = {
    "app_read": 0.30,
    "app_search": 0.22,
    "refresh": 0.08,
    "portal_page": 0.37,
    "sign_in": 0.03,
}
PAGE = os.sysconf("SC_PAGE_SIZE")


# The note of an operation that, instead of its page or read, signed its actor in again after an
# earlier failure had left it signed out (a portal browser whose sign-in failed, an app whose
# token request failed): not an error (the earlier failure was counted once), and its latency,
# a whole sign-in, is left out of the p99 like the sign_in operations'.
RESIGNED = "signed in again after an earlier failure"


class Unexpected(Exception):
    """An answer the scenario did not expect (counted as an error)."""


# --- the platform -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    var: Path
    log: Path
    idp: str
    fhir: str
    portal: str
    ports: dict[str, int]  # service name → port
    cards: dict[str, Path]  # parent | father → the sandbox's card files

    def service_pids(self) -> dict[str, list[int]]:
        """Each gunicorn master (by the port it binds) with its workers."""
        by_port = {port: name for name, port in self.ports.items()}
        out: dict[str, list[int]] = {}
        for pid in children(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--bind" not in argv:
                continue
            port = int(argv[argv.index(b"--bind") + 1].rsplit(b":", 1)[1])
            if port in by_port:
                out[by_port[port]] = [pid, *children(pid)]
        return out


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return round(total / 2**20, 1)


def start_platform(database_url: str, workers: int, var: Path) -> Platform:
    ports = {
        "idp": free_port(),
        "fhir": free_port(),
        "consent": free_port(),
        "consent-api": free_port(),
        "connector": free_port(),
        "federation": free_port(),
        "authority": free_port(),
        "fhir-072010": free_port(),
        "connector-072010": free_port(),
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PHR_") or k == "PHR_TEST_DATABASE_URLS"
    }
    env.update(
        PHR_VAR_DIR=str(var),
        PHR_DATABASE_URL=database_url,
        PHR_WORKERS=str(workers),
        PHR_LOG_LEVEL="WARNING",
        PHR_IDP_PORT=str(ports["idp"]),
        PHR_FHIR_PORT=str(ports["fhir"]),
        PHR_CONSENT_PORT=str(ports["consent"]),
        PHR_CONSENT_API_PORT=str(ports["consent-api"]),
        PHR_CONNECTOR_PORT=str(ports["connector"]),
        PHR_FEDERATION_PORT=str(ports["federation"]),
        PHR_CARD_AUTHORITY_URL=f"http://127.0.0.1:{ports['authority']}",
        PHR_DEV_SECOND_FHIR_PORT=str(ports["fhir-072010"]),
        PHR_DEV_SECOND_CONNECTOR_PORT=str(ports["connector-072010"]),
    )
    log = var.parent / "platform.log"
    var.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own `phr` CLI, fixed arguments
            [*PHR, "dev", "run"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log.read_text("utf-8", "replace")
        if "Press Ctrl-C to stop." in text:
            break
        if proc.poll() is not None:
            raise SystemExit("`phr dev run` stopped:\n" + text[-3000:])
        time.sleep(0.5)
    else:
        proc.kill()
        raise SystemExit("`phr dev run` did not come up in 300 s")
    sandbox = var / "sandbox"
    return Platform(
        proc,
        env,
        var,
        log,
        f"http://127.0.0.1:{ports['idp']}",
        f"http://127.0.0.1:{ports['fhir']}",
        f"http://127.0.0.1:{ports['consent']}",
        ports,
        {"parent": sandbox / "parent-card.json", "father": sandbox / "father-card.json"},
    )


def stop_platform(p: Platform) -> None:
    if p.proc.poll() is None:
        p.proc.send_signal(signal.SIGINT)
        try:
            p.proc.wait(60)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


@contextlib.contextmanager
def fresh_database(server_url: str):  # type: ignore[no-untyped-def]
    """A new database on the server of `server_url`, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = "platform_load_" + uuid.uuid4().hex[:10]
    url = server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name, name, admin
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- browsers and apps ------------------------------------------------------------------------


class Cards:
    """The sandbox's virtual cards, each used by one thread at a time (the file keeps the PIN
    counters, as a card's chip does)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.cards = {k: VirtualCard.load(p) for k, p in paths.items()}
        self.locks = {k: threading.Lock() for k in paths}

    def sign(self, who: str, idp: str, code: str) -> None:
        s = requests.Session()
        info = browser_get(s, f"{idp}/card/sessions/{code}", timeout=TIMEOUT_S)
        check(info, 200, "card session")
        doc = info.json()
        data = signed_data(doc["origin"], doc["session_id"], doc["challenge"])
        with self.locks[who]:
            card = self.cards[who]
            payload = {
                "certificate": base64.b64encode(card.certificate_der(AUTH)).decode(),
                "signature": base64.b64encode(card.sign(AUTH, AUTH_PIN, data)).decode(),
            }
        r = s.post(
            f"{idp}/card/sessions/{doc['session_id']}/response", json=payload, timeout=TIMEOUT_S
        )
        check(r, 200, "card response")


RESENT = {"count": 0}
_RESENT_LOCK = threading.Lock()


def browser_get(session: requests.Session, url: str, **kw: object) -> requests.Response:
    """GET as a browser sends it: when the connection was cut before any answer came back (a
    kept-alive connection the server closed as the request left it: "Connection aborted"), the
    GET is sent once more on a new connection, which HTTP allows for idempotent methods only
    (RFC 9110 section 9.2.2, RFC 9112 section 9.3.1); POSTs are never resent. A failure to
    connect, a timeout or a second failure is an error. Counted (`resent_after_reset`)."""
    try:
        return session.get(url, **kw)  # type: ignore[arg-type]
    except requests.ConnectionError as exc:
        if isinstance(exc, requests.Timeout) or not _aborted(exc):
            raise
        with _RESENT_LOCK:
            RESENT["count"] += 1
        return session.get(url, **kw)  # type: ignore[arg-type]


def _aborted(exc: requests.ConnectionError) -> bool:
    """The connection was cut after the request was sent (urllib3's ProtocolError), as opposed
    to a connection that could not be made (the server is down or refusing)."""
    return bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.ProtocolError)


def check(resp: requests.Response, status: int | tuple[int, ...], what: str) -> None:
    wanted = (status,) if isinstance(status, int) else status
    if resp.status_code not in wanted:
        raise Unexpected(f"{what}: HTTP {resp.status_code}")


def card_flow(
    browser: requests.Session, start: str, stop_at: str, cards: Cards, who: str, idp: str
) -> str:
    """Follow an authorization request through the card sign-in (and the consent screen,
    choosing the child) to the first URL under `stop_at`; returns it (not fetched)."""
    resp = browser_get(browser, start, allow_redirects=False, timeout=TIMEOUT_S)
    for _ in range(12):
        check(resp, (302, 303), "redirect")
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(stop_at):
            return location
        page = browser_get(browser, location, allow_redirects=False, timeout=TIMEOUT_S)
        if page.status_code in (302, 303):
            resp = page
            continue
        check(page, 200, "sign-in page")
        path = urlsplit(location).path
        if path.startswith("/login"):
            code = re.search(r"<code>([^<]+)</code>", page.text)
            done = re.search(r'data-card-done="([^"]+)"', page.text)
            if not code or not done:
                raise Unexpected("no card panel on the sign-in page")
            cards.sign(who, idp, code.group(1))
            resp = browser_get(
                browser,
                urljoin(location, html.unescape(done.group(1))),
                allow_redirects=False,
                timeout=TIMEOUT_S,
            )
        elif path.startswith("/consent"):
            choices = re.findall(
                r'name="patient" value="([^"]+)"[^>]*>\s*([^<]+)</label>', page.text
            )
            child = [pid for pid, label in choices if "お子さん" in label]
            csrf = re.search(r'name="csrf" value="([^"]*)"', page.text)
            if len(child) != 1 or not csrf:
                raise Unexpected("consent screen without the child")
            data = {
                "csrf": html.unescape(csrf.group(1)),
                "req": parse_qs(urlsplit(location).query)["req"][0],
                "patient": child[0],
                "decision": "allow",
            }
            resp = browser.post(
                urljoin(location, "/consent"), data=data, allow_redirects=False, timeout=TIMEOUT_S
            )
        else:
            raise Unexpected(f"unexpected page {path}")
    raise Unexpected("too many redirects")


@dataclass
class PortalBrowser:
    who: str
    session: requests.Session = field(default_factory=requests.Session)
    lock: threading.Lock = field(default_factory=threading.Lock)
    child: str | None = None
    csrf: str | None = None
    signed_in: bool = False  # False after a sign-in that failed: the next page signs in again

    def sign_in(self, p: Platform, cards: Cards) -> None:
        self.signed_in = False
        self.session = requests.Session()  # a new browser: no IdP session to reuse
        url = card_flow(
            self.session,
            p.portal + "/auth/login",
            p.portal + "/auth/callback",
            cards,
            self.who,
            p.idp,
        )
        r = browser_get(self.session, url, allow_redirects=True, timeout=TIMEOUT_S)
        check(r, 200, "portal callback")
        children_page = browser_get(self.session, p.portal + "/me/children", timeout=TIMEOUT_S)
        check(children_page, 200, "children page")
        m = re.search(r'href="/me/children/([^"/]+)/vaccinations"', children_page.text)
        if not m:
            raise Unexpected("no child on the children page")
        self.child = m.group(1)
        self.remember_csrf(children_page.text)
        self.signed_in = True

    def remember_csrf(self, text: str) -> None:
        m = re.search(r'name="csrf" value="([^"]*)"', text)
        if m:
            self.csrf = html.unescape(m.group(1))

    def pages(self) -> list[str]:
        c = self.child
        return [
            "/",
            "/me/children",
            f"/me/children/{c}/vaccinations",
            f"/me/children/{c}/growth",
            f"/me/records/{c}",
            "/me/apps",
            "/me/sources",
            "/me/notices",
            "/me/history",  # the access history: reads the trail, which waits for nothing now
        ]

    def sign_out(self, p: Platform) -> None:
        if self.csrf:
            with contextlib.suppress(requests.RequestException):
                self.session.post(
                    p.portal + "/auth/logout",
                    data={"csrf": self.csrf},
                    allow_redirects=False,
                    timeout=TIMEOUT_S,
                )


@dataclass
class AppUser:
    who: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    access: str = ""
    refresh_token: str = ""
    patient: str = ""
    session: requests.Session = field(default_factory=requests.Session)
    expires_at: float = 0.0  # monotonic time the access token expires
    # False when a token request failed (a refresh token the server may have rotated without
    # the app hearing the new one): as a real app does, the next use authorizes again.
    signed_in: bool = False

    def keep(self, doc: dict) -> None:
        self.access, self.refresh_token = doc["access_token"], doc["refresh_token"]
        self.expires_at = time.monotonic() + float(doc.get("expires_in", 300))

    def again(self, p: Platform, cards: Cards) -> int:
        """As an app does when its refresh chain broke (a token request that failed): send the
        person through the authorization again, once (the failure itself was counted).
        Returns the HTTP requests made."""
        if self.signed_in:
            return 0
        with self.lock:
            if self.signed_in:
                return 0
            self.sign_in(p, cards)
            return 10

    def fresh(self, p: Platform) -> int:
        """As an app does: refresh before the access token runs out (one refresh per chain
        at a time). Returns the HTTP requests made."""
        if self.expires_at - time.monotonic() > 60:
            return 0
        with self.lock:
            if self.expires_at - time.monotonic() > 60:
                return 0
            check(self.refresh(p), 200, "refresh before expiry")
            return 1

    def sign_in(self, p: Platform, cards: Cards) -> None:
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        state = secrets.token_urlsafe(12)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": APP_ID,
                "redirect_uri": APP_REDIRECT,
                "scope": APP_SCOPE,
                "state": state,
                "nonce": secrets.token_urlsafe(12),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "aud": p.fhir,
            }
        )
        browser = requests.Session()
        back = card_flow(
            browser, f"{p.idp}/authorize?{query}", APP_REDIRECT, cards, self.who, p.idp
        )
        params = parse_qs(urlsplit(back).query)
        if params.get("state") != [state] or "code" not in params:
            raise Unexpected("no code in the redirect back to the app")
        r = self.session.post(
            p.idp + "/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": APP_REDIRECT,
                "client_id": APP_ID,
                "code_verifier": verifier,
            },
            timeout=TIMEOUT_S,
        )
        check(r, 200, "code exchange")
        doc = r.json()
        self.keep(doc)
        self.patient = doc["patient"]
        self.signed_in = True

    def refresh(self, p: Platform) -> requests.Response:
        self.signed_in = False  # until the answer is read: a lost one breaks the chain
        r = self.session.post(
            p.idp + "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": APP_ID,
            },
            timeout=TIMEOUT_S,
        )
        if r.status_code == 200:
            self.keep(r.json())
            self.signed_in = True
        return r

    def get(self, p: Platform, path: str) -> requests.Response:
        return browser_get(
            self.session,
            p.fhir + path,
            headers={"Authorization": "Bearer " + self.access, "Accept": "application/fhir+json"},
            timeout=TIMEOUT_S,
        )


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    t: float  # scheduled, seconds since the start of the run
    latency_ms: float  # end minus scheduled time
    ok: bool
    status: int  # HTTP status of the last request, 0 for a failure without one
    requests: int = 1
    note: str = ""


class Recorder:
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.samples: list[Sample] = []
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def add(self, s: Sample) -> None:
        with self.lock:
            self.samples.append(s)

    def event(self, **kv: object) -> None:
        kv["t"] = round(time.monotonic() - self.t0, 1)
        with self.lock:
            self.events.append(kv)


class Mix:
    """The actors and what one operation of each kind does."""

    def __init__(self, p: Platform, cards: Cards, browsers: int, apps: int) -> None:
        self.p, self.cards = p, cards
        self.browsers = [PortalBrowser("parent") for _ in range(browsers)]
        self.apps = [AppUser("parent") for _ in range(apps)]
        self.revoker_app = AppUser("father")
        self.revoker_portal = PortalBrowser("father")
        self.rng = random.Random(22)  # noqa: S311 - a load mix, not a secret
        self.rng_lock = threading.Lock()

    def set_up(self) -> None:
        for b in [*self.browsers, self.revoker_portal]:
            b.sign_in(self.p, self.cards)
        for a in [*self.apps, self.revoker_app]:
            a.sign_in(self.p, self.cards)

    def pick(self, items: list):  # type: ignore[no-untyped-def]
        with self.rng_lock:
            return self.rng.choice(items)

    def choose_kind(self) -> str:
        with self.rng_lock:
            return self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]

    def run(self, kind: str) -> tuple[int, int, str]:
        """Do one operation; returns (last HTTP status, requests made, note). Raises on an
        error."""
        p = self.p
        if kind in ("app_read", "app_search"):
            app = self.pick(self.apps)
            if again := app.again(p, self.cards):
                return 200, again, RESIGNED
            extra = app.fresh(p)
            if kind == "app_read":
                path = f"/Patient/{app.patient}"
            elif self.pick([True, False]):
                path = f"/Immunization?patient={app.patient}&_count=50"
            else:
                path = f"/Observation?patient={app.patient}&category={BODY}&_count=50"
            r = app.get(p, path)
            check(r, 200, kind)
            return r.status_code, 1 + extra, ""
        if kind == "refresh":
            app = self.pick(self.apps)
            if not app.lock.acquire(blocking=False):  # one refresh per chain at a time
                r = app.get(p, f"/Patient/{app.patient}")
                check(r, 200, "app_read")
                return r.status_code, 1, "read instead (chain busy)"
            try:
                if not app.signed_in:
                    app.sign_in(p, self.cards)
                    return 200, 10, RESIGNED
                r = app.refresh(p)
                check(r, 200, "refresh")
                return r.status_code, 1, ""
            finally:
                app.lock.release()
        if kind == "portal_page":
            for _ in range(len(self.browsers)):
                b = self.pick(self.browsers)
                if b.lock.acquire(blocking=False):
                    break
            else:
                b = self.pick(self.browsers)
                b.lock.acquire()
            try:
                if not b.signed_in:
                    b.sign_in(p, self.cards)
                    return 200, 10, RESIGNED
                page = self.pick(b.pages())
                r = browser_get(
                    b.session, p.portal + page, allow_redirects=False, timeout=TIMEOUT_S
                )
                check(r, 200, f"portal {page.split('/')[2] if page != '/' else 'home'}")
                if "phr-unavailable" in r.text or 'class="problem"' in r.text:
                    raise Unexpected(f"portal page {page} shows an error")
                b.remember_csrf(r.text)
                return r.status_code, 1, ""
            finally:
                b.lock.release()
        if kind == "sign_in":
            b = self.pick(self.browsers)
            with b.lock:
                b.sign_out(p)
                b.sign_in(p, self.cards)
            return 200, 10, ""
        raise ValueError(kind)


def drive(
    mix: Mix, rec: Recorder, rate: float, seconds: float, pool: ThreadPoolExecutor
) -> tuple[float, float]:
    """Offer `rate` operations/s for `seconds`; returns (start, end) on the recorder's clock."""
    start = time.monotonic()
    n = int(rate * seconds)
    pending: list = []

    def one(kind: str, scheduled: float) -> None:
        note, status, reqs, ok = "", 0, 1, True
        try:
            status, reqs, note = mix.run(kind)
        except Unexpected as exc:
            ok, note = False, str(exc)
            with contextlib.suppress(ValueError, IndexError):
                status = int(note.rsplit("HTTP ", 1)[1])
        except requests.RequestException as exc:
            ok, note = False, type(exc).__name__
        except Exception as exc:  # anything else is an error too
            ok, note = False, f"{type(exc).__name__}: {exc}"[:200]
        end = time.monotonic()
        rec.add(Sample(kind, scheduled - rec.t0, (end - scheduled) * 1000, ok, status, reqs, note))

    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pending.append(pool.submit(one, mix.choose_kind(), scheduled))
        if len(pending) > 4000:
            pending = [f for f in pending if not f.done()]
    rest = start + seconds - time.monotonic()
    if rest > 0:  # the window lasts `seconds`, not until its last operation was scheduled
        time.sleep(rest)
    for f in pending:
        f.result(timeout=TIMEOUT_S * 4)
    return start - rec.t0, time.monotonic() - rec.t0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def window(rec: Recorder, t0: float, t1: float, kinds: set[str] | None = None) -> dict:
    with rec.lock:
        xs = [s for s in rec.samples if t0 <= s.t < t1 and (kinds is None or s.kind in kinds)]
    lat = [s.latency_ms for s in xs if s.kind != "sign_in" and s.note != RESIGNED]
    errors = [s for s in xs if not s.ok]
    by_kind: dict[str, dict] = {}
    for kind in WEIGHTS:
        ks = [s for s in xs if s.kind == kind]
        if ks:
            by_kind[kind] = {
                "n": len(ks),
                "errors": sum(not s.ok for s in ks),
                "p50_ms": round(percentile([s.latency_ms for s in ks], 50), 1),
                "p99_ms": round(percentile([s.latency_ms for s in ks], 99), 1),
            }
    notes: dict[str, int] = {}
    for s in errors:
        notes[f"{s.kind}: {s.note}"] = notes.get(f"{s.kind}: {s.note}", 0) + 1
    return {
        "operations": len(xs),
        "http_requests": sum(s.requests for s in xs),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(xs), 5) if xs else 0.0,
        "signed_in_again": sum(s.note == RESIGNED for s in xs),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat, default=0.0), 1),
        "by_kind": by_kind,
        "error_kinds": dict(sorted(notes.items(), key=lambda kv: -kv[1])[:10]),
    }


# --- the side loads: revoke and re-grant, connector runs ---------------------------------------


def revoke_cycle(mix: Mix, rec: Recorder) -> None:
    """The second guardian revokes her app in the portal; her app's token must be refused
    within 5 s and its refresh token at once; then she grants again."""
    p, b, app = mix.p, mix.revoker_portal, mix.revoker_app
    t = time.monotonic()
    try:
        with b.lock:
            if not b.signed_in:  # a failed cycle's sign-in (counted then): sign in again
                b.sign_in(p, mix.cards)
            page = browser_get(b.session, p.portal + "/me/apps", timeout=TIMEOUT_S)
            check(page, 200, "apps page")
            b.remember_csrf(page.text)
            ids = re.findall(r'action="/me/apps/([^"/]+)/revoke"', page.text)
            if not ids:
                raise Unexpected("no grant to revoke")
            for gid in ids:
                r = b.session.post(
                    p.portal + f"/me/apps/{gid}/revoke",
                    data={"csrf": b.csrf or ""},
                    allow_redirects=False,
                    timeout=TIMEOUT_S,
                )
                check(r, (302, 303), "revoke")
        revoked_at = time.monotonic()
        refused_after = None
        while time.monotonic() - revoked_at < 15:
            r = app.get(p, f"/Patient/{app.patient}")
            if r.status_code in (401, 403):
                refused_after = time.monotonic() - revoked_at
                break
            check(r, 200, "read before the revocation bites")
            time.sleep(0.1)
        refresh = app.refresh(p)
        app.sign_in(p, mix.cards)
        r = app.get(p, f"/Patient/{app.patient}")
        check(r, 200, "read after the new grant")
        rec.event(
            kind="revoke",
            ok=refused_after is not None and refused_after <= 5.0 and refresh.status_code == 400,
            refused_after_s=None if refused_after is None else round(refused_after, 2),
            refresh_after_revoke=refresh.status_code,
            seconds=round(time.monotonic() - t, 2),
        )
    except (Unexpected, requests.RequestException, KeyError) as exc:
        rec.event(kind="revoke", ok=False, note=f"{type(exc).__name__}: {exc}"[:200])


def connector_run(mix: Mix, rec: Recorder) -> None:
    exports = mix.p.var / "sandbox" / "exports"
    t = time.monotonic()
    try:
        out = subprocess.run(  # noqa: S603 - our own `phr connector run` on the sandbox exports
            [
                *PHR,
                "connector",
                "run",
                str(exports / "mch.csv"),
                str(exports / "vaccination.csv"),
                "--register",
                str(exports / "register.csv"),
            ],
            env=mix.p.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        rec.event(
            kind="connector",
            ok=out.returncode == 0,
            seconds=round(time.monotonic() - t, 1),
            tail=(out.stdout + out.stderr).strip().splitlines()[-1:] if out.returncode else [],
        )
    except subprocess.TimeoutExpired:
        rec.event(kind="connector", ok=False, note="timed out after 600 s")


def every(
    interval: float, stop: threading.Event, fn: Callable[[], object], first: float
) -> threading.Thread:
    def loop() -> None:
        if stop.wait(first):
            return
        while not stop.is_set():
            fn()
            if stop.wait(interval):
                return

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return th


# --- the run ----------------------------------------------------------------------------------


def pg_connections(admin, name: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with admin.connect() as c:
        return int(
            c.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            ).scalar_one()
        )


def search_capacity(args: argparse.Namespace, mix: Mix, rec: Recorder, pool) -> dict:  # type: ignore[no-untyped-def]
    """Step the offered rate up until a step misses (p99 ≥ --p99-limit or any error); when the
    first step already misses, step down instead (halving) to find a rate that meets both."""
    steps = []

    def step(rate: float) -> bool:
        t0, t1 = drive(mix, rec, rate, args.step_seconds, pool)
        w = window(rec, t0, t1 + 1)
        w.update(rate=round(rate, 2), achieved_ops_s=round(w["operations"] / (t1 - t0), 2))
        w["load_1m"] = round(os.getloadavg()[0], 2)  # the machine's, at the end of the step
        w.pop("by_kind")
        w["met"] = w["p99_ms"] < args.p99_limit and not w["errors"]
        steps.append(w)
        print(
            f"  step {rate:6.2f} ops/s: p99 {w['p99_ms']:7.1f} ms, errors {w['errors']}"
            f" ({w['error_kinds'] or '-'}), load {w['load_1m']}",
            flush=True,
        )
        time.sleep(3)  # let queues drain between steps
        return w["met"]

    rate, best = args.start_rate, 0.0
    if not step(rate):
        while rate > args.min_rate:
            rate /= 2
            if step(rate):
                best = rate
                break
        return {"capacity_ops_s": round(best, 2), "p99_limit_ms": args.p99_limit, "steps": steps}
    best = rate
    while rate * args.rate_factor <= args.max_rate:
        rate *= args.rate_factor
        if not step(rate):
            break
        best = rate
    return {"capacity_ops_s": round(best, 2), "p99_limit_ms": args.p99_limit, "steps": steps}


def add_platform_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the platform, its actors, the side loads and the capacity search (shared
    with bench/soak.py)."""
    ap.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:55432/postgres",
        help="a PostgreSQL server (the benchmark makes and drops its own database there)",
    )
    ap.add_argument("--workers", type=int, default=2, help="PHR_WORKERS")
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the hold")
    ap.add_argument("--hold-fraction", type=float, default=0.8)
    ap.add_argument("--capacity", type=float, help="skip the search: ops/s taken as capacity")
    ap.add_argument("--start-rate", type=float, default=3.0)
    ap.add_argument("--min-rate", type=float, default=0.5)
    ap.add_argument("--rate-factor", type=float, default=1.3)
    ap.add_argument("--max-rate", type=float, default=200.0)
    ap.add_argument("--step-seconds", type=float, default=40.0)
    ap.add_argument(
        "--p99-limit",
        type=float,
        default=P99_LIMIT_MS,
        help="ms: the search's latency bound; on a machine shared with other work, whose "
        "CPU waits set the p99 at any rate, a higher one finds where queues start to build",
    )
    ap.add_argument("--browsers", type=int, default=20, help="signed-in portal browsers")
    ap.add_argument("--apps", type=int, default=6, help="signed-in app users")
    ap.add_argument("--threads", type=int, default=96, help="load-generator threads")
    ap.add_argument("--revoke-every", type=float, default=60.0, help="seconds")
    ap.add_argument("--connector-every", type=float, default=180.0, help="seconds")


@dataclass
class Run:
    """A running platform with its signed-in actors, the recorder, and the memory samples."""

    p: Platform
    mix: Mix
    rec: Recorder
    pool: ThreadPoolExecutor
    admin: Any  # the SQLAlchemy engine on the server's maintenance database
    db_name: str
    stop: threading.Event
    memory: list[dict] = field(default_factory=list)

    def sample_memory(self, **extra: object) -> dict:
        """Each service's RSS (master + workers) and the database's connections, now."""
        row: dict = {"t": round(time.monotonic() - self.rec.t0, 1), **extra}
        row["load_1m"] = round(os.getloadavg()[0], 2)  # the shared machine's load average
        row.update({k: rss_mb(v) for k, v in sorted(self.p.service_pids().items())})
        with contextlib.suppress(Exception):
            row["pg_connections"] = pg_connections(self.admin, self.db_name)
        self.memory.append(row)
        return row


@contextlib.contextmanager
def running(args: argparse.Namespace) -> Iterator[Run]:
    """`phr dev run` on a fresh database with every actor signed in, memory sampled every
    minute and the side loads (revoke and re-grant, connector runs) going; stopped and dropped
    afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="platform-load-"))
    with fresh_database(args.database_url) as (db_url, db_name, admin):
        print(f"starting `phr dev run` on database {db_name} (var {tmp})", flush=True)
        p = start_platform(db_url, args.workers, tmp / "var")
        stop = threading.Event()
        try:
            mix = Mix(p, Cards(p.cards), args.browsers, args.apps)
            t_setup = time.monotonic()
            mix.set_up()
            print(
                f"signed in {args.browsers} portal browsers and {args.apps + 1} app users "
                f"in {time.monotonic() - t_setup:.0f} s",
                flush=True,
            )
            rec = Recorder(time.monotonic())
            run = Run(
                p, mix, rec, ThreadPoolExecutor(max_workers=args.threads), admin, db_name, stop
            )
            run.sample_memory()
            every(60, stop, run.sample_memory, 60)
            every(args.revoke_every, stop, lambda: revoke_cycle(mix, rec), 20)
            every(args.connector_every, stop, lambda: connector_run(mix, rec), 45)
            yield run
        finally:
            stop.set()
            stop_platform(p)


def capacity_of(args: argparse.Namespace, run: Run) -> dict:
    """The search's result, or the capacity given with --capacity."""
    if args.capacity:
        return {"capacity_ops_s": args.capacity, "steps": [], "given": True}
    print(f"capacity search (p99 < {args.p99_limit:g} ms, no errors):", flush=True)
    return search_capacity(args, run.mix, run.rec, run.pool)


def hold_minutes(run: Run, rate: float, minutes: float) -> list[dict]:
    """Offer `rate` for whole minutes; each minute's window, with the memory sampled at its
    end (`minute` in the memory row)."""
    out = []
    for m in range(max(1, round(minutes))):
        t0, t1 = drive(run.mix, run.rec, rate, 60.0, run.pool)
        w = window(run.rec, t0, t1 + 0.5)
        w.pop("by_kind")
        w["minute"] = m + 1
        out.append(w)
        mem = run.sample_memory(minute=m + 1)
        print(
            f"  minute {m + 1:3d}: {w['operations']} ops, p99 {w['p99_ms']:6.1f} ms, "
            f"errors {w['errors']}  rss {mem}",
            flush=True,
        )
    return out


def server_log_errors(p: Platform) -> list[str]:
    """Tracebacks and error lines in the platform's own log."""
    return [
        line
        for line in p.log.read_text("utf-8", "replace").splitlines()
        if "Traceback" in line or "[ERROR]" in line or "unhandled" in line
    ]


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": pyplatform.python_version(),
        "load_average_at_end": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_platform_arguments(ap)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "platform_load.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "platform_load.png")
    args = ap.parse_args(argv)

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # so `timeout`'s SIGTERM also stops the platform, drops the db

    signal.signal(signal.SIGTERM, _interrupt)

    started = datetime.now(UTC)
    with running(args) as run:
        p, rec, memory = run.p, run.rec, run.memory
        search = capacity_of(args, run)
        capacity = search["capacity_ops_s"] or args.min_rate
        hold_rate = round(capacity * args.hold_fraction, 2)
        print(
            f"capacity {capacity} ops/s; holding {hold_rate} ops/s for {args.minutes:g} min",
            flush=True,
        )
        h0 = time.monotonic() - rec.t0
        minutes = hold_minutes(run, hold_rate, args.minutes)
        h1 = time.monotonic() - rec.t0
        hold = window(rec, h0, h1 + 1)
    errors_in_log = server_log_errors(p)
    hold_mem = [m for m in memory if h0 <= m["t"] <= h1 + 61]
    warm = hold_mem[1:] if len(hold_mem) > 2 else hold_mem
    growth = {}
    for name in sorted(p.ports):
        xs = [m[name] for m in warm if name in m]
        if xs:
            growth[name] = {
                "first_mb": xs[0],
                "last_mb": xs[-1],
                "max_mb": max(xs),
                "growth_pct": round((max(xs) - xs[0]) / xs[0] * 100, 1),
            }
    result = {
        "benchmark": "bench/platform_load.py",
        "command": " ".join(
            [".venv/bin/python", "bench/platform_load.py", *(argv or sys.argv[1:])]
        ),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "setup": {
            "workers": args.workers,
            "portal_browsers": args.browsers,
            "app_users": args.apps + 1,
            "weights": WEIGHTS,
            "revoke_every_s": args.revoke_every,
            "connector_every_s": args.connector_every,
        },
        "search": search,
        "hold": {
            "rate_ops_s": hold_rate,
            "minutes": args.minutes,
            "wall_minutes": round((h1 - h0) / 60, 2),
            **hold,
            "per_minute": minutes,
        },
        "memory_mb_per_minute": memory,
        "memory_growth_after_warmup": growth,
        "revocations": [e for e in rec.events if e["kind"] == "revoke"],
        "connector_runs": [e for e in rec.events if e["kind"] == "connector"],
        "server_log_errors": errors_in_log[:20],
        "resent_after_reset": RESENT["count"],
    }
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
    plot(result, args.plot)
    print(
        f"hold: {hold['operations']} ops, errors {hold['errors']} "
        f"({hold['error_rate']:.4%}), p99 {hold['p99_ms']} ms; "
        f"memory growth {json.dumps({k: v['growth_pct'] for k, v in growth.items()})}; "
        f"revocations {sum(e['ok'] for e in result['revocations'])}/"
        f"{len(result['revocations'])} within 5 s; connector runs "
        f"{sum(e['ok'] for e in result['connector_runs'])}/{len(result['connector_runs'])} ok; "
        f"wrote {args.json} and {args.plot}",
        flush=True,
    )
    return 0


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8), sharex=False)
    per = result["hold"]["per_minute"]
    xs = [m["minute"] for m in per]
    ax1.plot(xs, [m["p99_ms"] for m in per], marker="o", label="p99")
    ax1.plot(xs, [m["p50_ms"] for m in per], marker=".", label="p50")
    limit = result["search"].get("p99_limit_ms", P99_LIMIT_MS)
    ax1.axhline(limit, color="grey", linestyle="--", label=f"{limit:g} ms (search's bound)")
    errs = [m["errors"] for m in per]
    capacity = result["search"]["capacity_ops_s"]
    basis = (
        f"{round(result['hold']['rate_ops_s'] / capacity * 100)}% of {capacity} ops/s"
        if capacity
        else f"no search step met p99 < {limit:g} ms: the floor rate"
    )
    ax1.set_title(
        f"hold at {result['hold']['rate_ops_s']} ops/s ({basis}): errors {sum(errs)} of "
        f"{result['hold']['operations']} operations"
    )
    ax1.set_xlabel("minute of the hold")
    ax1.set_ylabel("latency (ms)")
    ax1.legend(loc="upper left")
    mem = result["memory_mb_per_minute"]
    t_hold = {m["minute"]: m["load_1m"] for m in mem if "minute" in m and "load_1m" in m}
    if t_hold:  # the shared machine's load average at the end of each minute
        load = ax1.twinx()
        load.plot(list(t_hold), list(t_hold.values()), color="tab:red", alpha=0.4)
        load.set_ylabel("load average, 1 min (red)")
    names = sorted(
        {
            k
            for m in mem
            for k in m
            if k not in ("t", "pg_connections", "minute", "warm_up_end", "load_1m")
        }
    )
    for name in names:
        ax2.plot(
            [m["t"] / 60 for m in mem if name in m],
            [m[name] for m in mem if name in m],
            label=name,
        )
    ax2.set_xlabel("minutes since the load started (search, then hold)")
    ax2.set_ylabel("RSS, master + workers (MB)")
    ax2.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    raise SystemExit(main())
