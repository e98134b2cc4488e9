"""The "+ services" pages when the PHR server is down or refuses the portal's token: a
readable page (503, Japanese first) or a fresh sign-in, never a stack trace."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from consent.models import PatientLink
from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.demo_data import DEMO_MUNICIPALITY
from portal.auth import SUBJECT, TOKENS, token_store
from portal.token_store import Tokens
from tests.browser import live_server
from tests.conftest import free_port, make_environ


@pytest.fixture(scope="module")
def refusing_phr_server() -> Iterator[str]:
    app = Flask("refusing_phr_server")

    @app.get("/<path:anything>")
    def refuse(anything: str):  # type: ignore[no-untyped-def]
        issue = {"severity": "error", "code": "login", "diagnostics": "token expired"}
        return {"resourceType": "OperationOutcome", "issue": [issue]}, 401

    with live_server(app) as url:
        yield url


def _portal(settings: Settings, app_factory: Callable[[str], Flask]) -> FlaskClient:
    load_all(settings)
    app = app_factory("consent")
    with app.extensions["phr_db"].session() as s:  # linked: the portal has a server to read
        s.add(PatientLink(subject="sub-x", municipality=DEMO_MUNICIPALITY.code, code="x-1"))
    client = app.test_client()
    with app.test_request_context("/"):
        handle = token_store().save("sub-x", Tokens("at-x", "rt-x", time.time() + 300))
    with client.session_transaction() as sess:
        sess[SUBJECT] = "sub-x"
        sess[TOKENS] = handle
    return client


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_phr_server_down_is_a_readable_page(
    app_factory_for: Callable[..., Callable[[str], Flask]],
) -> None:
    settings, factory = app_factory_for(PHR_FHIR_URL=f"http://127.0.0.1:{free_port()}")
    client = _portal(settings, factory)
    for path in ("/me/children", "/me/history", "/me/export/records.json"):
        resp = client.get(path)
        assert resp.status_code == 503, path
        text = resp.get_data(as_text=True)
        assert 'role="alert"' in text and "PHRサーバ" in text and "Traceback" not in text
    english = client.get("/me/children?lang=en").get_data(as_text=True)
    assert "The record store (PHR server) cannot be reached now." in english


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_refused_token_means_signing_in_again(
    refusing_phr_server: str, app_factory_for: Callable[..., Callable[[str], Flask]]
) -> None:
    settings, factory = app_factory_for(PHR_FHIR_URL=refusing_phr_server)
    client = _portal(settings, factory)
    resp = client.get("/me/children")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/auth/login")
    with client.session_transaction() as sess:
        assert TOKENS not in sess  # the handle is dropped with the refused token


@pytest.fixture
def app_factory_for(tmp_path, database_url: str):  # type: ignore[no-untyped-def]
    """Settings with extra variables, migrated, and a factory of apps on them."""
    from phr_core import migrations
    from phr_core.config import load_settings
    from phr_core.services import SERVICES
    from tests.conftest import create_app

    made: list[Flask] = []

    def build(**extra: str):  # type: ignore[no-untyped-def]
        settings = load_settings(make_environ(tmp_path, database_url, **extra))
        for s in SERVICES:
            migrations.upgrade(s, settings.database_urls[s.name])

        def factory(name: str) -> Flask:
            spec = next(s for s in SERVICES if s.name == name)
            app = create_app(spec, settings)
            made.append(app)
            return app

        return settings, factory

    yield build
    for app in made:
        app.extensions["phr_db"].dispose()
