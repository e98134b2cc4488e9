"""The platform on loopback for portal tests: the IdP, the consent service and portal, and the
PHR server, each a real app in werkzeug threads on one test database, with every service's
demo data (the demo family: development sign-in citizen 1 is a parent with a child and
records). A `requests` session plays the browser through the IdP's dev sign-in."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.demo_data import DEMO_FAMILY
from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import PARENT_ID
from tests.conftest import make_environ

TIMEOUT = 10
PARENT = str(DEMO_FAMILY.parent_citizen)  # dev sign-in number of the demo parent
STRANGER = "4"  # a demo citizen with no links


def platform_environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = make_environ(tmp_path, database_url)
    env["PHR_ISSUER"] = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
    env["PHR_CONSENT_URL"] = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}"
    env["PHR_FHIR_URL"] = f"http://127.0.0.1:{env['PHR_FHIR_PORT']}"
    return env


@dataclass
class Platform:
    settings: Settings
    idp: str
    portal: str
    fhir: str
    apps: dict[str, object]


@contextmanager
def running(settings: Settings) -> Iterator[Platform]:
    from idp import app as idp_app_module
    from phr_server import app as fhir_app_module
    from portal import app as portal_app_module

    load_all(settings, family=True)
    idp_app_module.prepare(settings)
    apps = {
        "idp": idp_app_module.create_app(settings),
        "consent": portal_app_module.create_app(settings),
        "fhir": fhir_app_module.create_app(settings),
    }
    servers = []
    for name, app in apps.items():
        port = int(settings.urls[name].rsplit(":", 1)[1])
        server = make_server("127.0.0.1", port, app, threaded=True)  # type: ignore[arg-type]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
    try:
        yield Platform(
            settings, settings.urls["idp"], settings.urls["consent"], settings.urls["fhir"], apps
        )
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(5)
        for app in apps.values():
            app.extensions["phr_db"].dispose()  # type: ignore[attr-defined]


def app_tokens(p: Platform, client_id: str, redirect_uri: str, back: str, verifier: str) -> dict:
    """A public app's token request for the code on the redirect `back` (PKCE, no secret)."""
    code = parse_qs(urlsplit(back).query)["code"][0]
    return requests.post(
        p.idp + "/token",
        data={"grant_type": "authorization_code", "client_id": client_id, "code": code,
              "redirect_uri": redirect_uri, "code_verifier": verifier},
        timeout=TIMEOUT,
    ).json()  # fmt: skip


def form_value(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, html[:400]
    return m.group(1)


def sign_in(
    browser: requests.Session, p: Platform, person: str = PARENT, start: str = "/auth/login"
) -> str:
    """The portal's sign-in through the IdP's development sign-in, from the portal page
    `start`, to the portal page it lands on (its URL is returned)."""
    resp = browser.get(p.portal + start, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = resp.headers["Location"]
        url = p.idp + location if location.startswith("/") and "req=" in location else location
        if url.startswith("/"):
            url = p.portal + url
        if url.startswith(p.portal):
            resp = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
            if resp.status_code == 200:
                return url
            continue
        page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, page.text[:300]
        req = parse_qs(urlsplit(url).query)["req"][0]
        data = {"csrf": form_value(page.text, "csrf"), "req": req, "person": person}
        resp = browser.post(f"{p.idp}/login/dev", data=data, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The platform's environment (import it, with `platform`, into a test module)."""
    return platform_environ(tmp_path, database_url)


@pytest.fixture
def platform(migrated: Settings) -> Iterator[Platform]:
    with running(migrated) as p:
        yield p


def sign_in_page(
    page: Any, p: Platform, start: str, person: str = PARENT, land: str | None = None
) -> None:
    """In a browser (Playwright) page: open the portal page `start` signed out, sign in at the IdP's
    development sign-in, and land back on `start` (or on `land`)."""
    page.goto(p.portal + start)
    page.wait_for_url(p.idp + "/login*")
    page.fill("#person", person)
    page.click("#dev-login button[type=submit]")
    page.wait_for_url(p.portal + (land or start))


# Every page of the signed-in portal, for tests that visit them all (titles, accessibility).
PORTAL_PAGES = (
    "/",
    "/privacy",
    "/me/children",
    f"/me/records/{PARENT_ID}",
    f"/me/records/{CHILD}",
    f"/me/children/{CHILD}/growth",
    f"/me/children/{CHILD}/vaccinations",
    "/me/history",
    "/me/export",
    "/me/apps",
    "/me/sources",
    "/me/notices",
    "/me/delete",
)
