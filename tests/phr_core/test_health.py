"""Every service answers /healthz, and /readyz tells the truth about its database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from phr_core.config import load_settings
from phr_core.services import SERVICES, ServiceSpec
from tests.conftest import create_app, make_environ

SERVICE_IDS = [s.name for s in SERVICES]


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_healthz_and_readyz_on_migrated_database(
    service: ServiceSpec, app_factory: Callable[[str], Flask]
) -> None:
    client = app_factory(service.name).test_client()
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json() == {"status": "ok", "service": service.name}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    body = ready.get_json()
    assert body["status"] == "ready" and body["database"] == "ok"
    assert body["schema"].startswith(service.name + "_")


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_has_an_icon_for_its_pages(
    service: ServiceSpec, app_factory: Callable[[str], Flask]
) -> None:
    client = app_factory(service.name).test_client()
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")
    legacy = client.get("/favicon.ico")  # what a browser asks for by itself
    assert legacy.status_code == 301 and legacy.headers["Location"].endswith("/favicon.svg")


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_readyz_refuses_an_unmigrated_database(
    service: ServiceSpec, tmp_path: Path, database_url: str
) -> None:
    app = create_app(service, load_settings(make_environ(tmp_path, database_url)))
    try:
        resp = app.test_client().get("/readyz")
    finally:
        app.extensions["phr_db"].dispose()
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["schema"] is None
    assert body["hint"] == f"run `phr db upgrade {service.name}`"
    assert app.test_client().get("/healthz").status_code == 200


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_readyz_reports_an_unreachable_database_without_its_url(
    service: ServiceSpec, tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://phr:hunter2-password@127.0.0.1:9/phr"
    app = create_app(service, load_settings(make_environ(tmp_path, url)))
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["database"] == "unreachable"
    assert b"hunter2" not in resp.data and b"127.0.0.1:9" not in resp.data
