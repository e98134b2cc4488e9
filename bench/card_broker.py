"""Broker sign-ins per second against the authentication-app stand-in
(bench/card_verify.py --path broker).

The real IdP app (SQLite in a temporary folder, PHR_CARD_VERIFIER=app) and the stand-in
(idp.authapp_sim) served on loopback, so the IdP's upstream calls are real HTTP through
phr_core.outbound. One sign-in, for an already enrolled card: our /authorize parks the request
→ /login/app (single-use session, authorization URL) → the stand-in's authorize page and scan
(the virtual card's PIN check included) → /login/app/callback: token request with a
private_key_jwt assertion, ID token validation against the cached JWKS, subject lookup by keyed
hash, sign-in. The browser side runs in-process (Flask test clients); discovery and JWKS are
fetched once, as in a running IdP. Prints sign-ins per second (and the IdP's share: the
stand-in's virtual-card PIN check costs most of a sign-in here, which the real app spends on
the phone), the peak Python heap
(tracemalloc, in a separate untimed pass), the process's peak RSS and the load average.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import resource
import secrets
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask
from werkzeug.serving import make_server

from idp.app import create_app, prepare
from idp.authapp_sim.app import create_app as create_sim_app
from idp.authority_sim.ca import init_authority
from idp.card.profile import BasicAttributes
from idp.card.vcard import VirtualCard
from idp.clients import upsert_static
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.services import SERVICES

PIN = "1234"
REDIRECT = "https://rp.example.jp/cb"


def run(seconds: float) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("idp").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="card-broker-bench-"))
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    sim_url = f"http://127.0.0.1:{server.server_port}"
    settings = load_settings(
        {
            "PHR_VAR_DIR": str(tmp / "var"),
            "PHR_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PHR_CARD_VERIFIER": "app",
            "PHR_CARD_APP_ISSUER": sim_url,
            "PHR_CARD_APP_CLIENT_ID": "RP00000001",
            "PHR_IDP_GRANT_STORE": "local",
        }
    )
    for svc in SERVICES:
        migrations.upgrade(svc, settings.database_urls[svc.name])
    prepare(settings)
    idp = create_app(settings)
    server.app = sim = create_sim_app(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with idp.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {"client_id": "rp-1", "redirect_uris": [REDIRECT], "scope": "openid"},
            "rp-secret-" + "x" * 30,
        )
    issued = init_authority(settings).issue_card(
        BasicAttributes("会津 花子", "1990-04-01", "female", "福島県会津若松市東栄町3-46")
    )
    card = VirtualCard.create(
        tmp / "card.json",
        (issued.auth_cert, issued.auth_key),
        (issued.sign_cert, issued.sign_key),
        PIN,
        "ABC123",
    )

    idp_time = [0.0]  # wall time inside the IdP's own handlers (upstream calls included)

    def at_idp(call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return call(*args, **kw)
        finally:
            idp_time[0] += time.perf_counter() - t0

    def sign_in() -> int:
        """One browser's sign-in; returns how many times it went through the app."""
        browser, app_browser = idp.test_client(), sim.test_client()
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(secrets.token_bytes(32)).digest())
            .rstrip(b"=")
            .decode()
        )
        query = {
            "response_type": "code",
            "client_id": "rp-1",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        login = urlsplit(browser.get("/authorize?" + urlencode(query)).headers["Location"])
        resp = at_idp(browser.get, "/login/app?" + login.query)
        scans = 0
        while resp.status_code == 302 and resp.headers["Location"].startswith(sim_url):
            scans += 1
            upstream = urlsplit(resp.headers["Location"])
            form = {k: v[0] for k, v in parse_qs(upstream.query).items()}
            form.update(card=str(card.path), pin=PIN, decision="allow")
            back = urlsplit(app_browser.post("/authorize", data=form).headers["Location"])
            resp = at_idp(browser.get, back.path + "?" + back.query)
        if resp.status_code != 302 or not resp.headers["Location"].startswith("/authorize/resume"):
            raise SystemExit(
                f"sign-in failed: {resp.status_code} {resp.get_data(as_text=True)[:200]}"
            )
        return scans

    assert sign_in() == 2  # noqa: S101 - the first sign-in enrols (second pass with 基本4情報)
    idp_time[0] = 0.0
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        sign_in()
        n += 1
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    broker_s = idp_time[0]
    tracemalloc.start()
    for _ in range(5):
        sign_in()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    server.shutdown()
    idp.extensions["phr_db"].dispose()
    print(f"broker sign-ins (enrolled card, SQLite, stand-in on loopback): {n} in {wall:.1f} s")
    print(f"  {n / wall:.1f} sign-ins/s, {1000 * wall / max(n, 1):.1f} ms each, CPU {used:.1f} s")
    print(
        f"  of which the IdP's broker (/login/app + callback with token request, ID token "
        f"check, userinfo-free mapping): {1000 * broker_s / max(n, 1):.1f} ms each, "
        f"{n / broker_s if broker_s else 0:.1f}/s; the rest is the stand-in's virtual card "
        "(scrypt PIN check, key load)"
    )
    print(f"  peak Python heap over 5 sign-ins: {peak / 1024:.0f} KiB")
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
