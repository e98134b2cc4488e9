"""Fixtures: a fresh database per test on every configured backend, settings pointing at it,
and test clients per service.

Backends: SQLite always; PostgreSQL when PHR_TEST_DATABASE_URLS names a server, e.g.
`PHR_TEST_DATABASE_URLS=postgresql://postgres@127.0.0.1:5432/postgres` (each test gets its own
new database there, dropped afterwards). In CI (CI=true) a missing PostgreSQL is a failure.

A test that asks for `migrated` gets its fresh database as a copy of one migrated to head once
per session (a SQLite file copy, PostgreSQL `CREATE DATABASE … TEMPLATE`): the same schema and
rows as running every migration, without paying a second or two per test and backend.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from joserfc.jwk import RSAKey
from sqlalchemy import create_engine, text
from xdist.scheduler import LoadFileScheduling

from idp import clients as idp_clients
from phr_core import migrations
from phr_core import secrets as phr_secrets
from phr_core.config import Settings, load_settings, normalize_database_url
from phr_core.services import SERVICES, ServiceSpec
from tests.crypto_reuse import DevSecretPool, RsaKeyPool, SecretHashes

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_servers() -> list[str]:
    raw = os.environ.get("PHR_TEST_DATABASE_URLS", "").replace(",", " ").split()
    return [normalize_database_url(u) for u in raw if u.startswith(("postgres", "postgresql"))]


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _fresh_postgres(server: str, template: str | None = None) -> Iterator[str]:
    name = "phr_test_" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migration_heads() -> str:
    """A short key for the schema at head: every service's head revision."""
    heads = ";".join(f"{s.name}={migrations.head_revision(s)}" for s in SERVICES)
    return hashlib.sha256(heads.encode()).hexdigest()[:12]


def migrate_all(url: str) -> None:
    for s in SERVICES:
        migrations.upgrade(s, url)


class Templates:
    """Databases migrated to head, one per backend, made on first use in this session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = migration_heads()
        self.made: dict[str, str] = {}  # backend or server -> SQLite file or template name

    def sqlite(self) -> Path:
        if "sqlite" not in self.made:
            path = self.folder / f"migrated-{self.key}.db"
            migrate_all(f"sqlite:///{path}")  # the engines are disposed: no WAL file is left
            self.made["sqlite"] = str(path)
        return Path(self.made["sqlite"])

    def postgres(self, server: str) -> str:
        if server not in self.made:
            name = f"phr_template_{self.key}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            self.made[server] = name
            migrate_all(server.rsplit("/", 1)[0] + "/" + name)  # disposed: no one stays connected
        return self.made[server]

    def drop(self) -> None:
        for server in _postgres_servers():
            if server in self.made:
                admin = create_engine(server, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(
                        text(f'DROP DATABASE IF EXISTS "{self.made[server]}" WITH (FORCE)')
                    )
                admin.dispose()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.drop()


_AT_HEAD: set[str] = set()  # database URLs copied from a template, so already at head


@pytest.fixture
def database_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to an empty database of the backend under test; when the test asks for
    `migrated`, a copy of the session's database at head (see the module docstring)."""
    template: Templates | None = None
    if "migrated" in request.fixturenames:
        template = request.getfixturevalue("migrated_templates")
    if db_backend == "sqlite":
        path = tmp_path / "test.db"
        if template is not None:
            shutil.copyfile(template.sqlite(), path)
        url = f"sqlite:///{path}"
        yield from _at_head(url, template is not None)
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
    copy = template.postgres(servers[0]) if template is not None else None
    for url in _fresh_postgres(servers[0], copy):
        yield from _at_head(url, copy is not None)


def _at_head(url: str, copied: bool) -> Iterator[str]:
    if copied:
        _AT_HEAD.add(normalize_database_url(url))
    try:
        yield url
    finally:
        _AT_HEAD.discard(normalize_database_url(url))


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
    """Settings whose database has every service's schema at head (a database copied from the
    session's template is there already; any other, e.g. a service's own URL, is migrated)."""
    for s in SERVICES:
        url = settings.database_urls[s.name]
        if normalize_database_url(url) not in _AT_HEAD:
            migrations.upgrade(s, url)
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


# The longest test files (minutes each, mostly waiting on `phr dev run`): started first, so that
# with two workers (`make test`) the other worker runs the rest meanwhile instead of idling at
# the end. test_project_files.py runs mypy over every package, with no cache on a fresh clone
# (`make test`; .ci/run warms the cache first); collected last, it was the run's last file. The
# order of every other test is unchanged.
LONGEST_FIRST = (
    "tests/launcher/test_run_stops.py",
    "tests/test_project_files.py",
    "tests/launcher/test_replicas.py",  # one module-scoped replica platform, 1.5-2 min
)


def _longest_first(item: pytest.Item) -> int:
    file = item.nodeid.split("::")[0]
    return LONGEST_FIRST.index(file) if file in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_longest_first)


# Folders whose files share a session fixture that is slow to make go to one worker as a whole
# (`make test`'s --dist loadfile otherwise sends each file on its own, and each worker that gets
# one makes the fixture again): tests/apps' running sandbox (`phr dev run` with the example app,
# half a minute or more to start).
ONE_WORKER = ("tests/apps/",)
# The files whose tests share one `phr dev run` (tests/dev_platform.py), one unit of work too.
SHARED_DEV_PLATFORM = (
    "tests/federation/test_two_cities.py",
    "tests/launcher/test_newcomer_story.py",
    "tests/launcher/test_platform_flow.py",
)
# tests/dev_platform.py's fixture, one for the whole session; `--cpu-durations=N`.
pytest_plugins = ["tests.dev_platform", "tests.cpu_durations"]


class FilesAndFolders(LoadFileScheduling):
    """--dist loadfile, with each folder of ONE_WORKER one unit of work, and the files of
    SHARED_DEV_PLATFORM another."""

    def _split_scope(self, nodeid: str) -> str:
        file = super()._split_scope(nodeid)
        if file in SHARED_DEV_PLATFORM:
            return SHARED_DEV_PLATFORM[0]
        return next((folder for folder in ONE_WORKER if file.startswith(folder)), file)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadFileScheduling | None:
    return FilesAndFolders(config, log) if config.getvalue("dist") == "loadfile" else None


# RSA keys and client-secret hashes: each test gets the worker's again (tests/crypto_reuse.py
# says why and how).
RSA_POOL = RsaKeyPool(rsa.generate_private_key)
# The demo clients' secrets (idp/demo.py): hashed with scrypt whenever the IdP stores them.
CLIENT_SECRET_SUFFIXES = ("_CLIENT_SECRET", "_SERVICE_SECRET")
DEV_SECRETS: DevSecretPool | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Every RSA key made in this process comes from the pool (the card authority calls
    `rsa.generate_private_key`, the IdP joserfc's `RSAKey.generate_key`), a client secret
    the IdP stores is hashed once per secret, and development client secrets come from a pool."""
    global DEV_SECRETS
    DEV_SECRETS = DevSecretPool(phr_secrets, RSA_POOL, CLIENT_SECRET_SUFFIXES)
    idp_clients.hash_secret = SecretHashes(idp_clients.hash_secret)
    rsa.generate_private_key = RSA_POOL.generate_private_key
    binding = RSAKey.binding
    binding.generate_private_key = staticmethod(RSA_POOL.generate_for_joserfc)  # type: ignore[method-assign]  # a test-run stand-in


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Iterator[None]:
    shared = fixturedef.scope != "function"
    RSA_POOL.shared_setup += shared
    try:
        yield
    finally:
        RSA_POOL.shared_setup -= shared


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    RSA_POOL.new_test()
    if DEV_SECRETS is not None:
        DEV_SECRETS.new_test()
