"""The example app's token handling against the real sandbox platform, with the app served in
this process so the test can age its tokens: an expired access token is refreshed (and the
rotated refresh token kept), a 401 from the PHR server is answered by one refresh and a retry,
a refused refresh (invalid_grant) ends on the "access was withdrawn" page, and sign-out revokes
the refresh token and goes through the IdP's RP-initiated logout back to the app."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from tests.apps.conftest import INPROCESS_ID, TIMEOUT, Sandbox, sign_in_with_card

pytestmark = pytest.mark.slow  # the sandbox platform and the example app, about two minutes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vaccination_app"


def _load_example() -> ModuleType:
    """Import examples/vaccination_app/app.py as its own module (it is not a package of the
    platform, and it imports its `schedule` module as a top-level name)."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("vaccination_example_app", EXAMPLE / "app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture
def example(sandbox: Sandbox) -> Iterator[tuple[str, object]]:
    mod = _load_example()
    base = f"http://127.0.0.1:{sandbox.inprocess_port}"
    cfg = mod.Config(
        fhir_url=sandbox.fhir,
        client_id=INPROCESS_ID,
        redirect_uri=f"{base}/callback",
        home_url=f"{base}/",
        secret_key="test-only-" + "k" * 32,
    )
    app = mod.create_app(cfg)
    server = make_server("127.0.0.1", sandbox.inprocess_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, app
    finally:
        server.shutdown()
        thread.join(5)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def _sign_in(sb: Sandbox, base: str, browser: requests.Session) -> None:
    start = browser.get(base + "/", timeout=TIMEOUT)
    assert 'id="sign-in"' in start.text
    login = browser.post(
        base + "/login", data={"csrf": _csrf(start.text)}, allow_redirects=False, timeout=TIMEOUT
    )
    assert login.status_code == 302
    query = parse_qs(urlsplit(login.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["aud"] == [sb.fhir]
    callback = sign_in_with_card(sb, login.headers["Location"], base + "/callback", browser)
    done = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert done.status_code == 302, done.text[:300]


def _tokens(app: object) -> object:
    _, store = app.extensions["vaccination_app"]  # type: ignore[attr-defined]
    (tokens,) = store.items.values()
    return tokens


def test_refresh_expiry_withdrawal_and_sign_out(
    sandbox: Sandbox, example: tuple[str, object]
) -> None:
    base, app = example
    browser = requests.Session()
    _sign_in(sandbox, base, browser)
    page = browser.get(base + "/", timeout=TIMEOUT)
    assert page.status_code == 200 and 'id="next-doses"' in page.text

    # The access token ran out: the next page refreshes first, keeping the rotated token.
    tokens = _tokens(app)
    old_access, old_refresh = tokens.access_token, tokens.refresh_token
    tokens.expires_at = 0
    page = browser.get(base + "/", timeout=TIMEOUT)
    assert page.status_code == 200 and 'id="next-doses"' in page.text
    assert tokens.access_token != old_access and tokens.refresh_token != old_refresh

    # "Choose another record" asks for the consent screen again (an active grant would
    # otherwise be reused silently, with the same patient).
    page = browser.get(base + "/", timeout=TIMEOUT)
    switch = browser.post(
        base + "/login",
        data={"csrf": _csrf(page.text), "switch": "1"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert parse_qs(urlsplit(switch.headers["Location"]).query)["prompt"] == ["consent"]
    at_idp = browser.get(switch.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert urlsplit(at_idp.headers["Location"]).path == "/consent"

    # Several pages at once with an expired token: one refresh among them (a second one with
    # the same rotated-away refresh token would revoke the whole family).
    tokens.expires_at = 0
    cookies = browser.cookies.get_dict()
    with ThreadPoolExecutor(4) as pool:
        pages = list(
            pool.map(lambda _: requests.get(base + "/", cookies=cookies, timeout=TIMEOUT), range(4))
        )
    assert [p.status_code for p in pages] == [200] * 4
    assert all('id="next-doses"' in p.text for p in pages)
    tokens.expires_at = 0  # and the family is still alive
    assert browser.get(base + "/", timeout=TIMEOUT).status_code == 200

    # The PHR server refuses the token (401): one refresh, one retry, the page still shows.
    tokens.access_token = "not-a-token"
    page = browser.get(base + "/", timeout=TIMEOUT)
    assert page.status_code == 200 and 'id="growth"' in page.text

    # Sign-out: the refresh token is revoked, and the IdP's logout returns to the app.
    refresh = tokens.refresh_token
    page = browser.get(base + "/", timeout=TIMEOUT)
    out = browser.post(
        base + "/logout", data={"csrf": _csrf(page.text)}, allow_redirects=False, timeout=TIMEOUT
    )
    assert out.status_code == 302
    end = urlsplit(out.headers["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == sandbox.idp + "/logout"
    assert parse_qs(end.query)["id_token_hint"]
    back = browser.get(out.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert back.status_code == 302 and back.headers["Location"] == base + "/"
    meta = requests.get(sandbox.idp + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
    reuse = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": INPROCESS_ID},
        timeout=TIMEOUT,
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert 'id="sign-in"' in browser.get(base + "/", timeout=TIMEOUT).text

    # Signed in again; the refresh token is then refused by the IdP (here: revoked through
    # RFC 7009, as a withdrawal would make it): the app shows the withdrawn page, no error.
    _sign_in(sandbox, base, browser)
    tokens = _tokens(app)
    revoked = requests.post(
        meta["revocation_endpoint"],
        data={"token": tokens.refresh_token, "client_id": INPROCESS_ID},
        timeout=TIMEOUT,
    )
    assert revoked.status_code == 200
    tokens.expires_at = 0
    page = browser.get(base + "/", timeout=TIMEOUT)
    assert page.status_code == 403
    assert "アクセスが取り消されました" in page.text and "Access was withdrawn" in page.text
    assert 'id="next-doses"' not in page.text
    _, store = app.extensions["vaccination_app"]  # type: ignore[attr-defined]
    assert not store.items  # the tokens are dropped
