"""Citizen sign-in to the portal through the real IdP, and "who can see my data" with one-click
revoke. The IdP and the consent service run on loopback (werkzeug threads) on one test database;
a `requests` session plays the browser through the IdP's dev sign-in and consent screens."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from idp import app as idp_app_module
from idp import demo as idp_demo
from idp.clients import upsert_static
from launcher.demo import connector_jwk, load_all
from phr_core.config import Settings
from phr_core.db import Database
from portal import app as portal_app_module
from portal.app import PORTAL_SESSION_COOKIE
from tests.conftest import make_environ

APP = "test-diary-app"
APP_REDIRECT = "http://127.0.0.1:9/cb"  # never fetched: the test reads the code off the redirect
APP_SCOPE = "openid offline_access patient/Immunization.rs"
TIMEOUT = 10


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = make_environ(tmp_path, database_url)
    env["PHR_ISSUER"] = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
    env["PHR_CONSENT_URL"] = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}"
    return env


@dataclass
class Platform:
    settings: Settings
    idp: str
    portal: str


def _serve(app: object, port: int) -> tuple[object, threading.Thread]:
    server = make_server("127.0.0.1", port, app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def platform(migrated: Settings) -> Iterator[Platform]:
    settings = migrated
    load_all(settings)  # the demo city (consent) and the demo clients (IdP), the portal's too
    idp_app_module.prepare(settings)
    db = Database(settings.database_urls["idp"])
    try:
        idp_demo.load(db, settings, connector_jwk=connector_jwk(settings))
        with db.session() as s:
            upsert_static(
                s,
                {
                    "client_id": APP,
                    "client_name": "テスト日記アプリ",
                    "client_name#en": "Test diary app",
                    "redirect_uris": [APP_REDIRECT],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "scope": APP_SCOPE,
                    "purpose": "予防接種の記録を日記に表示するため",
                    "purpose#en": "To show vaccinations in your diary",
                },
                None,
            )
    finally:
        db.dispose()
    idp_app = idp_app_module.create_app(settings)
    portal_app = portal_app_module.create_app(settings)
    servers = [
        _serve(idp_app, int(settings.urls["idp"].rsplit(":", 1)[1])),
        _serve(portal_app, int(settings.urls["consent"].rsplit(":", 1)[1])),
    ]
    try:
        yield Platform(settings, settings.urls["idp"], settings.urls["consent"])
    finally:
        for server, thread in servers:
            server.shutdown()  # type: ignore[attr-defined]
            thread.join(5)
        for app in (idp_app, portal_app):
            app.extensions["phr_db"].dispose()


def _form(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, html[:400]
    return m.group(1)


def _through_idp(
    browser: requests.Session, idp: str, resp: requests.Response, stop: str, person: str = "4"
) -> requests.Response:
    """Follow redirects through the IdP's sign-in and consent pages (allowing) until the
    browser is sent to a URL starting with `stop`; returns that redirect."""
    for _ in range(10):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = resp.headers["Location"]
        if location.startswith(stop):
            return resp
        url = idp + location if location.startswith("/") else location
        page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, page.text[:300]
        req = parse_qs(urlsplit(url).query)["req"][0]
        csrf = _form(page.text, "csrf")
        if urlsplit(url).path.startswith("/login"):
            data = {"csrf": csrf, "req": req, "person": person}
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=10)
        else:
            data = {"csrf": csrf, "req": req, "decision": "allow"}
            resp = browser.post(f"{idp}/consent", data=data, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


def _sign_in(browser: requests.Session, p: Platform) -> requests.Response:
    """Portal sign-in up to (not including) the callback; returns the IdP's redirect to it."""
    start = browser.get(p.portal + "/auth/login", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 302
    target = urlsplit(start.headers["Location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}" == p.idp
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [p.settings.option("PHR_CONSENT_CLIENT_ID")]
    assert query["ui_locales"] == ["ja"]
    assert query["state"] and query["nonce"]
    first = browser.get(start.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    return _through_idp(browser, p.idp, first, p.portal + "/auth/callback")


def _grant_ids(html: str) -> list[str]:
    return re.findall(r'id="grant-([0-9a-f-]{36})"', html)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_sign_in_see_apps_and_revoke(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    home = browser.get(p.portal + "/", timeout=TIMEOUT)
    assert 'id="sign-in"' in home.text and 'id="apps-link"' not in home.text
    assert (
        browser.get(p.portal + "/me/apps", allow_redirects=False, timeout=TIMEOUT)
        .headers["Location"]
        .endswith("/auth/login")
    )

    callback = _sign_in(browser, p)
    signed_in = browser.get(callback.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert signed_in.status_code == 302, signed_in.text[:300]
    # Back to the page opened signed out above (the sign-in returns to the page asked for).
    assert signed_in.headers["Location"] == "/me/apps"
    home = browser.get(p.portal + "/", timeout=TIMEOUT)
    assert 'id="apps-link"' in home.text and 'id="sign-out"' in home.text
    assert "サインアウト" in home.text
    # Only the subject and the ID token are kept, in the portal's own cookie.
    assert browser.cookies.get(PORTAL_SESSION_COOKIE)

    apps = browser.get(p.portal + "/me/apps", timeout=TIMEOUT)
    assert apps.status_code == 200
    assert "データを見られる相手" in apps.text
    assert _grant_ids(apps.text) == []  # the portal's own sign-in is not an app with data

    # An app signs the same person in (same IdP browser session) and is granted access.
    verifier, challenge = _pkce()
    meta = requests.get(f"{p.idp}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    params = {
        "response_type": "code",
        "client_id": APP,
        "redirect_uri": APP_REDIRECT,
        "scope": APP_SCOPE,
        "state": "app-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    first = browser.get(
        meta["authorization_endpoint"] + "?" + urlencode(params),
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    done = _through_idp(browser, p.idp, first, APP_REDIRECT)
    code = parse_qs(urlsplit(done.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "client_id": APP,
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
        },
        timeout=TIMEOUT,
    ).json()
    assert "refresh_token" in tokens, tokens

    apps = browser.get(p.portal + "/me/apps", timeout=TIMEOUT)
    [grant_id] = _grant_ids(apps.text)
    assert "テスト日記アプリ" in apps.text
    assert "予防接種の記録を見る" in apps.text  # the scope in plain words
    assert "予防接種の記録を日記に表示するため" in apps.text  # the purpose
    assert 'aria-label="テスト日記アプリへの同意を取り消す"' in apps.text
    english = browser.get(p.portal + "/me/apps?lang=en", timeout=TIMEOUT)
    assert "Who can see my data" in english.text and "Revoke" in english.text
    browser.get(p.portal + "/me/apps?lang=ja", timeout=TIMEOUT)

    # Without the CSRF token the revoke is refused with a readable page.
    forged = browser.post(p.portal + f"/me/apps/{grant_id}/revoke", data={}, timeout=TIMEOUT)
    assert forged.status_code == 400 and 'role="alert"' in forged.text
    assert _grant_ids(browser.get(p.portal + "/me/apps", timeout=TIMEOUT).text) == [grant_id]

    # Someone else's browser (not signed in) cannot revoke it either.
    stranger = requests.Session().post(
        p.portal + f"/me/apps/{grant_id}/revoke", data={"csrf": "x"}, timeout=TIMEOUT
    )
    assert stranger.status_code == 403

    csrf = _form(apps.text, "csrf")
    revoked = browser.post(
        p.portal + f"/me/apps/{grant_id}/revoke", data={"csrf": csrf}, timeout=TIMEOUT
    )
    assert revoked.status_code == 200
    assert 'id="revoked-notice"' in revoked.text
    assert _grant_ids(revoked.text) == []

    # The IdP asks the consent service on refresh: the app's refresh token is refused.
    refresh = requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "client_id": APP,
            "refresh_token": tokens["refresh_token"],
        },
        timeout=TIMEOUT,
    )
    assert refresh.status_code == 400, refresh.text
    assert refresh.json()["error"] == "invalid_grant"

    # Sign-out: POST with the CSRF token, the session is cleared and the browser goes to the
    # IdP's end-session endpoint with the ID token hint and the registered return address.
    home = browser.get(p.portal + "/", timeout=TIMEOUT)
    out = browser.post(
        p.portal + "/auth/logout",
        data={"csrf": _form(home.text, "csrf")},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert out.status_code == 302
    end = urlsplit(out.headers["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == meta["end_session_endpoint"]
    end_query = parse_qs(end.query)
    assert end_query["post_logout_redirect_uri"] == [p.portal + "/"]
    assert end_query["id_token_hint"]
    back = browser.get(out.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert back.status_code in (302, 303), back.text[:300]
    assert back.headers["Location"].startswith(p.portal + "/")
    home = browser.get(p.portal + "/", timeout=TIMEOUT)
    assert 'id="sign-in"' in home.text and 'id="apps-link"' not in home.text


def test_tampered_state_and_replayed_callback_are_refused(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    callback = _sign_in(browser, p)
    url = callback.headers["Location"]

    tampered = re.sub(r"state=[^&]+", "state=forged", url)
    refused = browser.get(tampered, allow_redirects=False, timeout=TIMEOUT)
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text and "もう一度サインインしてください" in refused.text
    assert "Traceback" not in refused.text

    # The tampered attempt used up the pending sign-in: even the genuine callback is refused now.
    again = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert again.status_code == 400 and 'role="alert"' in again.text

    # A fresh sign-in succeeds once; replaying its callback is refused with a readable page.
    callback = _sign_in(browser, p)
    ok = browser.get(callback.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert ok.status_code == 302
    replay = browser.get(callback.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert replay.status_code == 400 and 'role="alert"' in replay.text

    # Replaying it with the cookie from before the callback: the IdP refuses the used code.
    other = requests.Session()
    callback = _sign_in(other, p)
    before = other.cookies.get(PORTAL_SESSION_COOKIE)
    assert other.get(callback.headers["Location"], allow_redirects=False, timeout=10).ok
    thief = requests.Session()
    thief.cookies.set(PORTAL_SESSION_COOKIE, before)
    stolen = thief.get(callback.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert stolen.status_code == 400 and 'role="alert"' in stolen.text

    # The person said no at the IdP: a readable page, in English when asked.
    denied = browser.get(
        p.portal + "/auth/callback?error=access_denied&state=x&lang=en",
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert denied.status_code == 400 and "The sign-in was cancelled." in denied.text


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_id_token_checks(consent_app: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signature, iss, aud, exp and nonce are each enforced (in-process, with a stand-in key)."""
    import time

    from joserfc import jwt
    from joserfc.jwk import ECKey, KeySet

    from portal import auth, idp_client

    key = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})
    other = ECKey.generate_key("P-256", parameters={"kid": "idp-1"})
    monkeypatch.setattr(idp_client, "key_set", lambda meta, fresh=False: KeySet([key]))
    with consent_app.test_request_context("/"):  # type: ignore[attr-defined]
        meta = {"issuer": auth.settings().issuer, "jwks_uri": "unused"}
        now = int(time.time())
        good = {
            "iss": meta["issuer"],
            "aud": auth.client_id(),
            "sub": "phr-sub-1",
            "nonce": "n1",
            "iat": now,
            "exp": now + 300,
        }

        def token(signer: ECKey = key, **changes: object) -> str:
            return jwt.encode({"alg": "ES256", "kid": "idp-1"}, {**good, **changes}, signer)

        assert auth._verify_id_token(meta, token(), "n1")["sub"] == "phr-sub-1"
        for bad in (
            token(other),
            token(iss="http://evil.example"),
            token(aud="someone-else"),
            token(exp=now - 3600),
            token(nonce="n2"),
            token(sub=""),
        ):
            with pytest.raises(auth.SignInError):
                auth._verify_id_token(meta, bad, "n1")
