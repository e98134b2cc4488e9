"""The example app across the federation: a parent whose child moved from city A to city B
signs in once; the app finds both cities' PHR servers at the trust anchor (`/list`,
`/resolve`), gets a token for each, and shows the child's vaccinations from both cities, each
with its city. Nothing in the app is registered at city B's server."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from tests.apps.test_example_tokens import _csrf, _load_example
from tests.conftest import free_port
from tests.federation.conftest import Federation, federation  # noqa: F401 (fixture)
from tests.portal.live_platform import PARENT, TIMEOUT
from tests.portal.test_portal_two_cities import (  # noqa: F401 (fixtures)
    city_b_database,
    environ,
    two,
)
from tests.portal.two_cities import CITY_A, CITY_B, TwoCities

pytestmark = pytest.mark.slow  # two cities' platforms and the example app

APP_ID = "test-federated-vaccination-app"


@pytest.fixture
def anchor(federation: Federation) -> Iterator[str]:  # noqa: F811
    """The test federation's trust anchor, served over HTTP at its entity id."""
    url = federation.anchor_id
    server = make_server("127.0.0.1", int(url.rsplit(":", 1)[1]), federation.anchor, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)


def _register(cities: TwoCities, base: str, scope: str) -> None:
    from idp.clients import upsert_static

    meta = {
        "client_id": APP_ID,
        "client_name": "予防接種スケジュール（連合テスト）",
        "redirect_uris": [f"{base}/callback"],
        "post_logout_redirect_uris": [f"{base}/"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": scope,
    }
    idp_app = cities.platform.apps["idp"]
    with idp_app.extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        upsert_static(s, meta, None)


def _authorize(cities: TwoCities, url: str, browser: requests.Session, redirect_uri: str) -> str:
    """Dev sign-in as the demo parent, then the consent screen with the child's city-A record
    chosen; returns the callback URL."""
    idp = cities.platform.idp
    resp = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(10):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(redirect_uri):
            return location
        page = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, page.text[:300]
        req = parse_qs(urlsplit(location).query)["req"][0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        if urlsplit(location).path.startswith("/login"):
            data = {"csrf": csrf.group(1), "req": req, "person": PARENT}
            resp = browser.post(idp + "/login/dev", data=data, allow_redirects=False, timeout=10)
            continue
        choices = re.findall(r'name="patient" value="([^"]+)"[^>]*>\s*([^<]+)</label>', page.text)
        child_a = [pid for pid, label in choices if "お子さん" in label and "会津" in label]
        assert len(child_a) == 1, choices
        data = {
            "csrf": html.unescape(csrf.group(1)),
            "req": req,
            "patient": child_a[0],
            "decision": "allow",
        }
        resp = browser.post(idp + "/consent", data=data, allow_redirects=False, timeout=TIMEOUT)
    raise AssertionError("too many redirects")


def test_the_example_app_shows_both_cities_vaccinations(two: TwoCities, anchor: str) -> None:  # noqa: F811
    mod = _load_example()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = mod.Config(
        fhir_url=two.platform.fhir,
        client_id=APP_ID,
        redirect_uri=f"{base}/callback",
        home_url=f"{base}/",
        secret_key="test-only-" + "k" * 32,
        trust_anchor=anchor,
    )
    _register(two, base, cfg.scopes())
    app = mod.create_app(cfg)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser = requests.Session()
        start = browser.get(base + "/", timeout=TIMEOUT)
        login = browser.post(
            base + "/login", data={"csrf": _csrf(start.text)}, allow_redirects=False, timeout=10
        )
        # patient/ scopes only: apps get no user/ scopes (issue 14), and need none here
        assert "user%2F" not in login.headers["Location"]
        callback = _authorize(two, login.headers["Location"], browser, f"{base}/callback")
        home = browser.get(callback, timeout=TIMEOUT)
        assert home.status_code == 200, home.text[:500]
        rows = re.findall(
            r'<tr class="given"><td>([^<]*)</td><td>([^<]*)</td><td class="city">([^<]*)</td>',
            home.text,
        )
        assert len(rows) == 14 + 1  # city A's 14 doses and the varicella dose given in B
        assert {r[2] for r in rows} == {CITY_A, CITY_B}
        assert [r[2] for r in rows if r[1] == "水痘"] == [CITY_B]
        # The schedule counts B's dose: varicella's next dose is the second.
        varicella = re.search(
            r'data-vaccine="Varicella">\s*<td>[^<]*<span[^>]*>[^<]*</span></td>\s*<td>([^<]*)<',
            home.text,
        )
        assert varicella and varicella.group(1) == "2回目", home.text[:3000]
        assert 'id="unreachable"' not in home.text

        two.stop_b()  # B's server down: A's doses still shown, with a readable notice
        down = browser.get(base + "/", timeout=TIMEOUT)
        assert down.status_code == 200 and 'id="unreachable"' in down.text
        assert len(re.findall(r'<tr class="given">', down.text)) == 14
    finally:
        server.shutdown()
        thread.join(5)
