"""An independent, maintained OIDC client library against the IdP over real HTTP.

panva's `openid-client` v6 (npm; an OpenID-certified RP library, pinned by
tests/idp/rp/package-lock.json) runs in Node as the relying party: discovery, the code flow with
PKCE S256, state and nonce, ID token validation, userinfo, refresh with rotation, introspection
and revocation. It talks to the IdP served by a real HTTP server on loopback; this test plays
the person's browser (dev sign-in and consent pages) with `requests`. The library does every
protocol step and every check it makes of our responses; whatever it rejects fails the test
with the library's error.

Needs Node.js >= 20 and npm; `npm ci` installs the locked library when node_modules is missing.
Outside CI their absence skips with the reason; in CI (CI=true) it is a failure.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from idp.app import create_app, prepare
from idp.clients import upsert_static
from phr_core.config import Settings, load_settings
from tests.conftest import IN_CI, free_port

RP_DIR = Path(__file__).parent / "rp"
NODE_TIMEOUT_S = 120


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail("CI must run the independent RP test but " + reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def openid_client() -> str:
    """Path to `node`, with the locked openid-client installed under tests/idp/rp."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("Node.js >= 20 and npm are not installed (apt-get install nodejs npm)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(re.match(r"v(\d+)", out.stdout.strip()).group(1))  # type: ignore[union-attr]
    if major < 20:
        _unavailable(f"openid-client v6 needs Node.js >= 20, found {out.stdout.strip()}")
    wanted = json.loads((RP_DIR / "package.json").read_text())["dependencies"]["openid-client"]
    installed = RP_DIR / "node_modules" / "openid-client" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != wanted:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=RP_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {RP_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return node


def _placeholder(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@dataclass
class LiveIdP:
    url: str
    app: Flask
    settings: Settings
    clients: dict[str, dict[str, str]] = field(default_factory=dict)


@pytest.fixture
def live_idp(environ: dict[str, str], migrated: Settings) -> Iterator[LiveIdP]:
    """The IdP on the migrated test database, served on a loopback port (serving_idp)."""
    with serving_idp(environ) as live:
        yield live


@contextmanager
def serving_idp(environ: dict[str, str]) -> Iterator[LiveIdP]:
    """The IdP with `environ` (on a migrated database), served on a loopback port by a real HTTP
    server, with two confidential clients (client_secret_basic) in different sectors: A
    redirects to 127.0.0.1 and gets ES256 ID tokens, B redirects to localhost and gets RS256 ones.

    The issuer must be known before create_app, so the server binds its port first (no race
    with another process taking it) and gets the real app once the issuer is settled."""
    server = make_server("127.0.0.1", 0, _placeholder, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = load_settings({**environ, "PHR_ISSUER": url, "PHR_IDP_GRANT_STORE": "local"})
    prepare(settings)
    app = create_app(settings)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = LiveIdP(url, app, settings)
    rp_port = free_port()  # nobody listens there: the browser stops at the redirect
    for name, host, alg in (("A", "127.0.0.1", "ES256"), ("B", "localhost", "RS256")):
        meta = {
            "client_id": f"independent-rp-{name.lower()}",
            "client_name": f"Independent RP {name}",
            "redirect_uris": [f"http://{host}:{rp_port}/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid offline_access",
            "id_token_signed_response_alg": alg,
        }
        secret = f"independent-rp-{name.lower()}-secret-" + "s" * 24
        with app.extensions["phr_db"].session() as s:
            upsert_static(s, dict(meta), secret)
        live.clients[name] = {
            "client_id": meta["client_id"],
            "client_secret": secret,
            "redirect_uri": meta["redirect_uris"][0],
            "id_token_alg": alg,
        }
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(5)
        app.extensions["phr_db"].dispose()


class Browser:
    """One person's browser at the IdP: a cookie jar that answers the sign-in and consent
    pages and stops at the redirect back to the client."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.http = requests.Session()

    def walk(self, url: str, person: int) -> tuple[str, list[str]]:
        """Follow the authorization request to the client's redirect URI; returns that URL
        and the pages shown on the way."""
        pages: list[str] = []
        resp = self.http.get(url, allow_redirects=False, timeout=10)
        for _ in range(10):
            assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
            location = urljoin(resp.url, resp.headers["Location"])
            if not location.startswith(self.issuer + "/"):
                return location, pages
            parts = urlsplit(location)
            if parts.path not in ("/login", "/consent"):
                resp = self.http.get(location, allow_redirects=False, timeout=10)
                continue
            pages.append(parts.path)
            page = self.http.get(location, timeout=10)
            assert page.status_code == 200, page.text[:500]
            req = parse_qs(parts.query)["req"][0]
            if parts.path == "/login":
                resp = self.sign_in(req, page.text, person)
                continue
            form = {"csrf": _csrf(page.text), "req": req, "decision": "allow"}
            resp = self.http.post(
                self.issuer + "/consent", data=form, allow_redirects=False, timeout=10
            )
        raise AssertionError("too many redirects")

    def sign_in(self, req: str, page: str, person: int) -> requests.Response:
        """Answer the sign-in page: the development sign-in as demo citizen `person` (the card
        verifiers' browsers, tests/idp/card/test_independent_rp_verifiers.py, use the card)."""
        form = {"csrf": _csrf(page), "req": req, "person": str(person)}
        return self.http.post(
            self.issuer + "/login/dev", data=form, allow_redirects=False, timeout=10
        )


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


@dataclass
class Run:
    result: dict
    pages: dict[str, list[str]]
    callbacks: dict[str, dict[str, list[str]]]


PEOPLE = {"A-other-person": 2}  # every other step is demo citizen 1


def run_rp(
    node: str,
    live: LiveIdP,
    tmp_path: Path,
    browser: Browser | None = None,
    only: str | None = None,
) -> Run:
    """Run tests/idp/rp/flow.mjs against the live IdP, playing the browser when it asks
    (`browser`: how it signs in; `only="one_flow"`: a single code flow instead of the tour)."""
    browser = browser or Browser(live.url)
    config: dict[str, object] = {"issuer": live.url, "clients": live.clients}
    if only:
        config["only"] = only
    pages: dict[str, list[str]] = {}
    callbacks: dict[str, dict[str, list[str]]] = {}
    result = None
    stderr_path = tmp_path / "rp.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [node, "flow.mjs", json.dumps(config)],
            cwd=RP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        watchdog = threading.Timer(NODE_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                msg = json.loads(line)
                if "authorize" in msg:
                    step = msg["step"]
                    callback, pages[step] = browser.walk(msg["authorize"], PEOPLE.get(step, 1))
                    callbacks[step] = parse_qs(urlsplit(callback).query)
                    proc.stdin.write(json.dumps({"callback": callback}) + "\n")
                    proc.stdin.flush()
                elif "result" in msg:
                    result = msg["result"]
            code = proc.wait(NODE_TIMEOUT_S)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    err = stderr_path.read_text()
    assert code == 0 and result is not None, f"openid-client run failed (exit {code}):\n{err}"
    return Run(result, pages, callbacks)


def test_openid_client_full_flow(openid_client: str, live_idp: LiveIdP, tmp_path: Path) -> None:
    run = run_rp(openid_client, live_idp, tmp_path)
    r = run.result
    issuer = live_idp.url
    a_id, b_id = live_idp.clients["A"]["client_id"], live_idp.clients["B"]["client_id"]

    # Discovery as the library read it.
    assert r["metadata"]["issuer"] == issuer
    assert r["metadata"]["code_challenge_methods_supported"] == ["S256"]
    assert r["oauth_metadata"] == r["metadata"]  # RFC 8414's well-known URL, same document

    # The browser side: sign-in and consent once per person and client, then remembered.
    assert run.pages == {
        "A-first": ["/login", "/consent"],
        "A-again": [],
        "B-first": ["/consent"],
        "B-again": [],
        "A-other-person": ["/login", "/consent"],
    }
    for back in run.callbacks.values():
        assert back["iss"] == [issuer]  # RFC 9207; the library checked it too

    # Code flow: the library validated the ID token; here its claims as it returned them.
    a1 = r["a1"]
    claims = a1["claims"]
    sub_a = claims["sub"]
    assert claims["iss"] == issuer
    assert claims["aud"] == a_id
    assert claims["nonce"] == a1["nonce"]
    assert claims["acr"] == "urn:phr:acr:dev"
    assert isinstance(claims["auth_time"], int)
    assert a1["token_type"] == "bearer"  # the library lower-cases it
    assert a1["has_refresh_token"]
    assert set(a1["scope"].split()) == {"openid", "offline_access"}
    assert 0 < a1["expires_in"] <= 300
    assert a1["userinfo"]["sub"] == sub_a
    assert a1["introspect_access"]["active"] is True
    assert a1["introspect_access"]["client_id"] == a_id
    assert a1["introspect_access"]["iss"] == issuer
    assert a1["introspect_refresh"]["active"] is True
    assert a1["introspect_refresh"]["sub"] == sub_a

    # Refresh: rotated; the spent token is inactive and refused, and replaying it revokes the
    # whole family (reuse detection), the new pair included.
    ref = r["refresh"]
    assert ref["rotated"]
    if ref["claims"] is not None:  # a refreshed ID token, validated by the library
        assert ref["claims"]["sub"] == sub_a
        assert ref["claims"]["aud"] == a_id
    assert ref["userinfo"]["sub"] == sub_a
    assert ref["introspect_old_refresh"] == {"active": False}
    assert ref["introspect_new_refresh"]["active"] is True
    assert ref["introspect_new_access"]["active"] is True
    assert ref["replay_old"] == {
        "name": "ResponseBodyError",
        "code": "OAUTH_RESPONSE_BODY_ERROR",
        "error": "invalid_grant",
        "status": 400,
    }
    after = ref["after_replay"]
    assert after["introspect_new_refresh"] == {"active": False}
    assert after["introspect_new_access"] == {"active": False}
    assert after["refresh_new"]["error"] == "invalid_grant"

    # Stable: a new sign-in with a fresh discovery gives client A the same sub.
    assert r["a3"]["claims"]["sub"] == sub_a

    # Revocation (RFC 7009): a revoked token introspects inactive and is refused.
    rev = r["revoke"]
    assert rev["introspect_access_before"]["active"] is True
    assert rev["introspect_access_after"] == {"active": False}
    assert rev["userinfo_after"]["name"] == "WWWAuthenticateChallengeError"
    assert rev["userinfo_after"]["status"] == 401
    assert rev["userinfo_after"]["error"] == "invalid_token"
    assert rev["introspect_refresh_before"]["active"] is True
    assert rev["introspect_refresh_after"] == {"active": False}
    assert rev["refresh_after"]["error"] == "invalid_grant"

    # Another sector (redirect host localhost): another sub for the same person, stable too.
    b1 = r["b1"]
    sub_b = b1["claims"]["sub"]
    assert b1["claims"]["aud"] == b_id
    assert sub_b != sub_a
    assert b1["userinfo"]["sub"] == sub_b
    assert b1["introspect_refresh"]["sub"] == sub_b
    assert b1["introspect_access"]["active"] is True
    assert r["b2"]["claims"]["sub"] == sub_b

    # Another person at client A: another sub; a client cannot introspect another's tokens.
    other = r["other_person"]
    assert other["claims"]["sub"] not in (sub_a, sub_b)
    assert other["introspect_access"]["active"] is True
    assert other["access_by_client_b"] == {"active": False}
    assert other["refresh_by_client_b"] == {"active": False}


def test_apps_in_other_sectors_cannot_link_a_person_through_access_tokens(
    openid_client: str, live_idp: LiveIdP, tmp_path: Path
) -> None:
    r = run_rp(openid_client, live_idp, tmp_path).result
    seen_by_a = {r["a1"]["claims"]["sub"], r["a1"]["introspect_access"]["sub"]}
    seen_by_b = {r["b1"]["claims"]["sub"], r["b1"]["introspect_access"]["sub"]}
    # Every identifier of the person that app A is given differs from every one B is given.
    assert not seen_by_a & seen_by_b
