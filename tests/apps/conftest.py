"""The running sandbox (`phr dev run` with its demo family) and the example app (`phr dev
example`), both on loopback, the app registered statically through PHR_IDP_CLIENTS_FILE as
docs/apps.md describes (on a free port, so the test never collides with a developer's 8010)."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from launcher.sandbox import AUTH_PIN
from tests.conftest import free_port, make_environ
from tests.launcher.test_run import PHR, _read_until, _start
from tests.processes import Lines, stop

TIMEOUT = 15
# The example app's granular scope: body measurements, not every Observation.
BODY_MEASUREMENTS = (
    "patient/Observation.rs?category="
    "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS|body-measurement"
)
APP_ID = "test-vaccination-app"
APP_NAME = "予防接種スケジュール（テスト）"
INPROCESS_ID = "test-vaccination-app-inprocess"  # the example app served inside the test


@dataclass
class Sandbox:
    env: dict[str, str]
    idp: str
    fhir: str
    portal: str
    app: str
    card: Path
    inprocess_port: int


def _client(client_id: str, base: str) -> dict[str, object]:
    return {
        "client_id": client_id,
        "client_name": APP_NAME,
        "client_name#en": "Vaccination schedule (test)",
        "redirect_uris": [f"{base}/callback"],
        "post_logout_redirect_uris": [f"{base}/"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid offline_access launch/patient "
        "patient/Patient.rs patient/Immunization.rs " + BODY_MEASUREMENTS,
        "purpose": "お子さんの予防接種の予定と成長の記録を表示するため",
        "purpose#en": "To show your child's vaccination schedule and growth",
    }


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited early:\n{Lines.of(proc).rest(timeout=5)}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    pytest.fail(f"{url} never answered")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One platform for the module's tests (each signs in and consents on its own; starting it
    costs half a minute on a shared machine)."""
    tmp_path = tmp_path_factory.mktemp("sandbox")
    env = make_environ(tmp_path, "unused")
    del env["PHR_DATABASE_URL"]  # the embedded default, as a developer's first run
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    clients = tmp_path / "clients.json"
    inprocess = free_port()
    clients.write_text(
        json.dumps(
            [_client(APP_ID, app), _client(INPROCESS_ID, f"http://127.0.0.1:{inprocess}")],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    env["PHR_IDP_CLIENTS_FILE"] = str(clients)
    platform = _start(env)
    example = None
    try:
        out = _read_until(platform, "Press Ctrl-C to stop.", timeout=120)
        line = next(x for x in out if x.startswith("sandbox: "))
        m = re.search(r"card (\S+) ", line)
        assert m, line
        example = subprocess.Popen(
            [*PHR, "dev", "example", "--port", str(port)],
            env={**os.environ, **env, "APP_CLIENT_ID": APP_ID},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_http(app + "/", example)
        yield Sandbox(
            env,
            f"http://127.0.0.1:{env['PHR_IDP_PORT']}",
            f"http://127.0.0.1:{env['PHR_FHIR_PORT']}",
            f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}",
            app,
            Path(m.group(1)),
            inprocess,
        )
    finally:
        try:
            if example is not None:
                stop(example, signal.SIGINT, timeout=30)
        finally:
            stop(platform, signal.SIGINT, timeout=30)


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, page[:500]
    return html.unescape(m.group(1))


def sign_in_with_card(
    sb: Sandbox, authorize_url: str, redirect_uri: str, browser: requests.Session | None = None
) -> str:
    """Play the browser from the authorization request to the redirect back to the app: the
    card panel's short code signed with `phr card sign` (as the phone would), then the consent
    screen with the child's record chosen. Returns the callback URL (not fetched)."""
    browser = browser or requests.Session()
    resp = browser.get(authorize_url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(8):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(redirect_uri):
            return location
        page = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        path = urlsplit(location).path
        if path.startswith("/login"):
            code = re.search(r"<code>([^<]+)</code>", page.text)
            done = re.search(r'data-card-done="([^"]+)"', page.text)
            assert code and done, page.text[:500]
            card_sign(sb, code.group(1))
            resp = browser.get(
                urljoin(location, html.unescape(done.group(1))),
                allow_redirects=False,
                timeout=TIMEOUT,
            )
        else:
            assert path.startswith("/consent"), location
            choices = re.findall(
                r'name="patient" value="([^"]+)"[^>]*>\s*([^<]+)</label>', page.text
            )
            child = [pid for pid, label in choices if "お子さん" in label]
            assert len(child) == 1, choices
            data = {
                "csrf": _field(page.text, "csrf"),
                "req": parse_qs(urlsplit(location).query)["req"][0],
                "patient": child[0],
                "decision": "allow",
            }
            resp = browser.post(
                urljoin(location, "/consent"), data=data, allow_redirects=False, timeout=TIMEOUT
            )
    raise AssertionError("too many redirects")


def card_sign(sb: Sandbox, code: str) -> None:
    """`phr card sign CODE --card var/sandbox/parent-card.json` with the authentication PIN."""
    out = subprocess.run(
        [*PHR, "card", "sign", code, "--card", str(sb.card), "--pin-stdin"],
        env={**os.environ, **sb.env},
        input=f"{AUTH_PIN}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
