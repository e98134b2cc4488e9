"""Fixtures: a fresh database per test on every configured backend, settings pointing at it,
and test clients per service.

Backends: SQLite always; PostgreSQL when PHR_TEST_DATABASE_URLS names a server, e.g.
`PHR_TEST_DATABASE_URLS=postgresql://postgres@127.0.0.1:5432/postgres` (each test gets its own
new database there, dropped afterwards). In CI (CI=true) a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from phr_core import migrations
from phr_core.config import Settings, load_settings, normalize_database_url
from phr_core.services import SERVICES, ServiceSpec

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_servers() -> list[str]:
    raw = os.environ.get("PHR_TEST_DATABASE_URLS", "").replace(",", " ").split()
    return [normalize_database_url(u) for u in raw if u.startswith(("postgres", "postgresql"))]


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _fresh_postgres(server: str) -> Iterator[str]:
    name = "phr_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of the backend under test."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    servers = _postgres_servers()
    if not servers:
        reason = (
            "PostgreSQL: no server given; set PHR_TEST_DATABASE_URLS=postgresql://… "
            "(.ci/run starts one)"
        )
        if IN_CI:
            pytest.fail("CI must test PostgreSQL but " + reason)
        pytest.skip(reason)
    yield from _fresh_postgres(servers[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_environ(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """An environment for one test: its own var folder, database and ports."""
    env = {"PHR_VAR_DIR": str(tmp_path / "var"), "PHR_DATABASE_URL": database_url}
    for s in SERVICES:
        port = free_port()
        env[f"PHR_{s.env_prefix}_PORT"] = str(port)
    env["PHR_CARD_AUTHORITY_URL"] = f"http://127.0.0.1:{free_port()}"
    # The consent decision API's own pool (started by `phr dev run` and `phr consent serve`);
    # tests that serve the consent app in process reach its API wherever PHR_CONSENT_URL
    # points, the documented one-pool setting. Tests of the real runner drop it.
    env["PHR_CONSENT_API_PORT"] = str(free_port())
    env["PHR_CONSENT_API_URL"] = "$PHR_CONSENT_URL"
    for name in ("PHR_DEV_SECOND_FHIR_PORT", "PHR_DEV_SECOND_CONNECTOR_PORT"):
        env[name] = str(free_port())  # `phr dev run`'s second city
    env.update(extra)
    return env


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    return make_environ(tmp_path, database_url)


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return load_settings(environ)


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """Settings whose database has every service's schema at head."""
    for s in SERVICES:
        migrations.upgrade(s, settings.database_urls[s.name])
    return settings


def create_app(service: ServiceSpec, settings: Settings) -> Flask:
    import importlib

    module = importlib.import_module(f"{service.web_package or service.package}.app")
    app = module.create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app_factory(migrated: Settings) -> Iterator[Callable[[str], Flask]]:
    """Build a service's app on the migrated test database; disposed after the test."""
    from phr_core.services import get_service

    apps: list[Flask] = []

    def build(name: str) -> Flask:
        app = create_app(get_service(name), migrated)
        apps.append(app)
        return app

    yield build
    for app in apps:
        if "phr_audit" in app.extensions:  # the PHR server's queued AuditEvents
            app.extensions["phr_audit"].close()
        app.extensions["phr_db"].dispose()
