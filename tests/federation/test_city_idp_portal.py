"""The portal's sign-in at a city-run IdP: the choice offers the platform's IdP first and the
city IdP the federation vouches for; signing in there (private_key_jwt: the city IdP holds no
secret of the portal's) makes the person `<issuer>#<sub>` in the portal, so the city link made
for that subject shows, a city consent signs in again at the same IdP, and an IdP the
federation stops vouching for is no longer offered."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from consent.models import PortalTokens
from idp.clients import upsert_static
from idp.subjects import PHR_SECTOR
from phr_core.config import load_settings
from phr_core.demo_data import DEMO_FAMILY, DEMO_MUNICIPALITY
from portal.providers import client_jwk
from tests.federation.conftest import Federation
from tests.federation.test_city_idp_e2e import (
    CITIZEN,
    _link_at_city,
    _phr_subject,
    city_idp,
    platform_running,
)
from tests.federation.test_federated_resource import register_idp
from tests.portal.live_platform import Platform, form_value

TIMEOUT = 10


@contextmanager
def serving(app: Flask, base_url: str) -> Iterator[None]:
    server = make_server("127.0.0.1", int(base_url.rsplit(":", 1)[1]), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def city(federation: Federation, tmp_path: Path) -> Flask:
    app = city_idp(federation, tmp_path, "city-idp")
    register_idp(federation, app)
    return app


@pytest.fixture
def portal_platform(federation: Federation, city: Flask) -> Iterator[Platform]:
    issuer = city.extensions["idp"].issuer
    settings = load_settings({**federation.settings.environ, "PHR_CONSENT_OTHER_IDPS": issuer})
    portal = settings.urls["consent"]
    # The city IdP's operator registers the portal statically (`phr consent client-jwk`).
    with city.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": settings.option("PHR_CONSENT_CLIENT_ID"),
                "client_name": "わたしの健康記録ポータル",
                "redirect_uris": [f"{portal}/auth/callback"],
                "post_logout_redirect_uris": [f"{portal}/"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [client_jwk(settings)]},
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access user/*.rs",
                "phr_sector": PHR_SECTOR,
                "phr_first_party": True,
            },
            None,
        )
    with platform_running(federation, settings) as p, serving(city, issuer):
        yield p


def sign_in_at(browser: requests.Session, p: Platform, issuer: str, person: int) -> None:
    """The portal's sign-in at `issuer` through its development sign-in, back to the portal."""
    resp = browser.get(
        f"{p.portal}/auth/login?idp={quote(issuer, safe='')}",
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    base = p.portal
    for _ in range(12):
        if resp.status_code == 200:
            return
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = resp.headers["Location"]
        url = base + location if location.startswith("/") else location
        base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        resp = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if resp.status_code == 200 and urlsplit(url).path == "/login" and base == issuer:
            req = parse_qs(urlsplit(url).query)["req"][0]
            data = {"csrf": form_value(resp.text, "csrf"), "req": req, "person": str(person)}
            resp = browser.post(
                f"{issuer}/login/dev", data=data, allow_redirects=False, timeout=TIMEOUT
            )
    raise AssertionError("too many redirects")


def test_the_sign_in_offers_the_home_idp_first_then_the_city_idp(
    portal_platform: Platform, city: Flask
) -> None:
    page = requests.get(f"{portal_platform.portal}/auth/login", timeout=TIMEOUT)
    assert page.status_code == 200
    links = re.findall(r'href="/auth/login\?idp=([^"]+)"', page.text)
    from urllib.parse import unquote_plus

    assert [unquote_plus(x) for x in links] == [
        portal_platform.settings.issuer,
        city.extensions["idp"].issuer,
    ]
    assert "サインイン先を選んでください" in page.text


def test_a_citizen_signed_in_at_the_city_idp_is_the_namespaced_subject_in_the_portal(
    federation: Federation, portal_platform: Platform, city: Flask
) -> None:
    issuer = city.extensions["idp"].issuer
    namespaced = _link_at_city(portal_platform, city, _phr_subject(city, CITIZEN))
    browser = requests.Session()
    sign_in_at(browser, portal_platform, issuer, CITIZEN)

    # The portal keeps the person's tokens from the city IdP under <issuer>#<sub> ...
    consent_app: Flask = portal_platform.apps["consent"]  # type: ignore[assignment]
    with consent_app.extensions["phr_db"].session() as s:
        owners = set(s.scalars(select(PortalTokens.subject)))
    assert owners == {namespaced}
    # ... and shows the city link made for that subject.
    sources = browser.get(f"{portal_platform.portal}/me/sources", timeout=TIMEOUT)
    assert sources.status_code == 200
    assert f'id="source-{DEMO_MUNICIPALITY.code}"' in sources.text
    assert "delete-loaded" in sources.text or "withdraw" in sources.text  # linked, consented

    # The records page reads the PHR server with the city IdP's first-party token (sealed to
    # the PHR server's key): the person and the child the city named.
    children = browser.get(f"{portal_platform.portal}/me/children", timeout=TIMEOUT)
    assert children.status_code == 200
    born = DEMO_FAMILY.child_birth().strftime("%Y-%m")
    assert f"お子さん（{born}生まれ" in children.text
    # A city consent that needs the card's attributes signs in again at the same IdP.
    withdraw = browser.get(
        f"{portal_platform.portal}/me/sources/{DEMO_MUNICIPALITY.code}/withdraw", timeout=TIMEOUT
    )
    assert withdraw.status_code == 200
    again = browser.get(f"{portal_platform.portal}/auth/login", allow_redirects=False)
    assert again.status_code == 302 and again.headers["Location"].startswith(issuer + "/")

    # Signing out revokes the city IdP's refresh token and ends the session there.
    csrf = form_value(sources.text, "csrf")
    out = browser.post(
        f"{portal_platform.portal}/auth/logout", data={"csrf": csrf}, allow_redirects=False
    )
    assert out.status_code == 302 and out.headers["Location"].startswith(issuer + "/")
    with consent_app.extensions["phr_db"].session() as s:
        assert list(s.scalars(select(PortalTokens.subject))) == []


def test_an_idp_the_federation_no_longer_vouches_for_is_not_offered(
    federation: Federation, portal_platform: Platform, city: Flask
) -> None:
    issuer = city.extensions["idp"].issuer
    federation.remove_subordinate(federation.anchor, issuer)
    consent_app: Flask = portal_platform.apps["consent"]  # type: ignore[assignment]
    consent_app.extensions["portal_federation_resolver"] = federation.resolver()  # no cache
    # Only the home IdP is left: the sign-in goes straight there, as without a city IdP.
    resp = requests.get(
        f"{portal_platform.portal}/auth/login", allow_redirects=False, timeout=TIMEOUT
    )
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(portal_platform.settings.issuer + "/")
    refused = requests.get(
        f"{portal_platform.portal}/auth/login?idp={quote(issuer, safe='')}", timeout=TIMEOUT
    )
    assert refused.status_code == 400
