"""Twenty parents on the portal at once, while apps read, do not take the platform down (issue
22): `phr dev run` under gunicorn, every portal page reading the PHR server, which asks the
consent decision API, and not a single 5xx. Not timed: speed lives in bench/platform_load.py."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests

from phr_core.demo_data import DEMO_FAMILY
from tests.conftest import make_environ
from tests.launcher.test_run import _read_until, _start

pytestmark = pytest.mark.slow  # a whole platform under twenty sessions

SESSIONS = 20
ROUNDS = 4  # pages per session, all sessions at once
TIMEOUT = 30
PARENT = str(DEMO_FAMILY.parent_citizen)
APP_ID = "demo-vaccination-app"  # the development IdP's demo app (idp/demo.py)
APP_REDIRECT = "http://127.0.0.1:8010/callback"  # never fetched
APP_SCOPE = "openid offline_access launch/patient patient/Patient.rs patient/Immunization.rs"


def _field(text: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert m, text[:400]
    return html.unescape(m.group(1))


def _through_idp(browser: requests.Session, start: str, stop_at: str, idp: str) -> str:
    """From an authorization request through the IdP's development sign-in (and the consent
    screen, choosing the child) to the first URL under `stop_at`, which is returned."""
    resp = browser.get(start, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(stop_at):
            return location
        page = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, (location, page.status_code, page.text[:300])
        req = parse_qs(urlsplit(location).query)["req"][0]
        csrf = _field(page.text, "csrf")
        if urlsplit(location).path.startswith("/login"):
            data = {"csrf": csrf, "req": req, "person": PARENT}
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=10)
        else:
            choices = re.findall(
                r'name="patient" value="([^"]+)"[^>]*>\s*([^<]+)</label>', page.text
            )
            child = [pid for pid, label in choices if "お子さん" in label]
            assert len(child) == 1, choices
            data = {"csrf": csrf, "req": req, "patient": child[0], "decision": "allow"}
            resp = browser.post(
                urljoin(location, "/consent"), data=data, allow_redirects=False, timeout=TIMEOUT
            )
    raise AssertionError("too many redirects")


def _browser_get(session: requests.Session, url: str, **kw: object) -> requests.Response:
    """GET as a browser sends it: a request on a kept-alive connection that the server closed
    just as it left (gunicorn's gthread worker closes idle connections after its keep-alive
    time) is sent once more on a new connection. A second failure, a timeout or any 5xx
    stands."""
    try:
        return session.get(url, timeout=TIMEOUT, **kw)  # type: ignore[arg-type]
    except requests.ConnectionError as exc:
        if isinstance(exc, requests.Timeout):
            raise
        return session.get(url, timeout=TIMEOUT, **kw)  # type: ignore[arg-type]


def _portal_session(portal: str, idp: str) -> tuple[requests.Session, str]:
    """A signed-in portal browser and the child's Patient id from its children page."""
    browser = requests.Session()
    back = _through_idp(browser, portal + "/auth/login", portal + "/auth/callback", idp)
    assert browser.get(back, timeout=TIMEOUT).status_code == 200
    page = browser.get(portal + "/me/children", timeout=TIMEOUT)
    m = re.search(r'href="/me/children/([^"/]+)/vaccinations"', page.text)
    assert page.status_code == 200 and m, page.text[:400]
    return browser, m.group(1)


def _app_token(idp: str, fhir: str) -> tuple[str, str]:
    """An app's access token (authorization code with PKCE, consent for the child) and the
    launch patient."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": APP_ID,
            "redirect_uri": APP_REDIRECT,
            "scope": APP_SCOPE,
            "state": "s1",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "aud": fhir,
        }
    )
    back = _through_idp(requests.Session(), f"{idp}/authorize?{query}", APP_REDIRECT, idp)
    code = parse_qs(urlsplit(back).query)["code"][0]
    r = requests.post(
        idp + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "client_id": APP_ID,
            "code_verifier": verifier,
        },
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"], r.json()["patient"]


def test_twenty_portal_sessions_and_app_reads_get_no_5xx(tmp_path: Path, database_url: str) -> None:
    env = make_environ(tmp_path, database_url)
    del env["PHR_CONSENT_API_URL"]  # the real default: the decision API's own pool
    env["PHR_DEV_SECOND_CITY"] = "off"
    proc = _start(env)
    try:
        out = _read_until(proc, "Press Ctrl-C to stop.", timeout=180)
        api = f"http://127.0.0.1:{env['PHR_CONSENT_API_PORT']}/"
        assert any("Consent decision API" in line and api in line for line in out), out
        idp = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
        portal = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}"
        fhir = f"http://127.0.0.1:{env['PHR_FHIR_PORT']}"
        sessions = [_portal_session(portal, idp) for _ in range(SESSIONS)]
        token, patient = _app_token(idp, fhir)

        statuses: list[tuple[str, int]] = []
        lock = threading.Lock()
        start = threading.Barrier(SESSIONS + 4)

        def browse(browser: requests.Session, child: str) -> None:
            pages = ["/", f"/me/children/{child}/vaccinations", f"/me/records/{child}", "/me/apps"]
            start.wait(60)
            for i in range(ROUNDS):
                page = pages[i % len(pages)]
                try:
                    status = _browser_get(browser, portal + page).status_code
                except requests.RequestException as exc:
                    status, page = 599, f"{page} {exc!r}"
                with lock:
                    statuses.append((page, status))

        def read() -> None:
            app = requests.Session()
            start.wait(60)
            for _ in range(ROUNDS * 3):
                try:
                    status = _browser_get(
                        app,
                        f"{fhir}/Immunization?patient={patient}",
                        headers={"Authorization": "Bearer " + token},
                    ).status_code
                except requests.RequestException:
                    status = 599
                with lock:
                    statuses.append(("app read", status))

        threads = [threading.Thread(target=browse, args=s) for s in sessions]
        threads += [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert len(statuses) == SESSIONS * ROUNDS + 4 * ROUNDS * 3
        failed = [s for s in statuses if s[1] >= 500]
        assert not failed, failed
        assert {s for _, s in statuses} == {200}, statuses
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=60)
