"""`phr db backup` / `phr db restore`: a loaded platform backed up, destroyed and restored
elsewhere (another var folder, another database, also the other database engine) reads the same
records, consents and audit trail; a wrong passphrase, a flipped byte or a cut-off archive fail
loudly."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import MetaData, create_engine, inspect, select, text

from launcher import backup
from launcher.cli import main
from launcher.demo import load_all
from phr_core import migrations
from phr_core.config import Settings, load_settings, normalize_database_url
from phr_core.db import Database, make_engine
from phr_core.services import SERVICES, ServiceSpec, get_service
from phr_server import audit
from phr_server.models import StoredResource
from phr_server.repository import Repository
from phr_server.storage import Keyring
from tests.conftest import Templates, make_environ

PASSPHRASE = "correct horse battery staple"


def _cli(environ: dict[str, str], *args: str, passphrase: str | None = PASSPHRASE) -> Result:
    env: dict[str, str | None] = {k: v for k, v in environ.items()}
    env["PHR_BACKUP_PASSPHRASE"] = passphrase
    return CliRunner().invoke(main, ["--env-file", os.devnull, "db", *args], env=env)


def _postgres_server() -> str | None:
    raw = os.environ.get("PHR_TEST_DATABASE_URLS", "").replace(",", " ").split()
    return normalize_database_url(raw[0]) if raw else None


@contextmanager
def other_database(backend: str, folder: Path, templates: Templates | None = None) -> Iterator[str]:
    """A new database of `backend` to restore into (dropped afterwards): empty, or with
    `templates` a copy of the session's database migrated to head (as after `phr db upgrade`;
    saves migrating again in each test)."""
    if backend == "sqlite":
        path = folder / "restored.db"
        if templates is not None:
            shutil.copyfile(templates.sqlite(), path)
        yield f"sqlite:///{path}"
        return
    server = _postgres_server()
    if server is None:
        pytest.skip("PostgreSQL: no server given in PHR_TEST_DATABASE_URLS")
    name = "phr_restore_" + uuid.uuid4().hex[:12]
    copy = f' TEMPLATE "{templates.postgres(server)}"' if templates is not None else ""
    _on_server(server, f'CREATE DATABASE "{name}"{copy}')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        _on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _on_server(server: str, statement: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def _audit_trail(settings: Settings, n: int) -> None:
    """A few AuditEvents, written as the PHR server writes them (sealed with its data key)."""
    db = Database(settings.database_urls["fhir"])
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    try:
        with db.session() as s:
            for i in range(n):
                audit.record(s, repo, {
                    "resourceType": "AuditEvent",
                    "id": f"backup-test-{i}",
                    "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                             "code": "110110"},
                    "action": "R",
                    "recorded": "2026-01-02T03:04:05Z",
                    "outcome": "0",
                    "agent": [{"requestor": True, "who": {"display": "backup test"}}],
                    "source": {"observer": {"display": "phr-server"}},
                })  # fmt: skip
            s.commit()
    finally:
        db.dispose()


def _readable(settings: Settings) -> dict[str, Any]:
    """What a restore must bring back: every stored resource decrypted with the PHR server's
    data key (so the key came along), the consents and the audit trail."""
    found: dict[str, Any] = {}
    db = Database(settings.database_urls["fhir"])
    keyring = Keyring(settings.secret("PHR_FHIR_DATA_KEY"))
    try:
        with db.session() as s:
            bodies = {}
            for r in s.scalars(select(StoredResource)):
                raw = keyring.open(s, r.key_id, r.resource_type, r.id, r.version_id, r.body)
                bodies[f"{r.resource_type}/{r.id}/{r.version_id}"] = json.loads(raw)
    finally:
        db.dispose()
    found["resources"] = bodies
    found["audit"] = sorted(k for k in bodies if k.startswith("AuditEvent/"))
    found["consents"] = _readable_consents(settings)
    return found


def _readable_consents(settings: Settings) -> list[tuple[Any, ...]]:
    engine = make_engine(settings.database_urls["consent"])
    try:
        with engine.connect() as conn:
            return sorted(
                tuple(r)
                for r in conn.execute(
                    text("SELECT id, kind, subject, actor, status, current_version "
                         "FROM consent_record")
                )
            )  # fmt: skip
    finally:
        engine.dispose()


def _snapshot(settings: Settings) -> dict[str, list[Any]]:
    """Every row of every service's tables, in the backup's portable form."""
    rows: dict[str, list[Any]] = {}
    for svc in SERVICES:
        engine = make_engine(settings.database_urls[svc.name])
        try:
            with engine.connect() as conn:
                meta = MetaData()
                meta.reflect(conn, only=sorted(backup.owned_tables(svc)))
                for table in meta.sorted_tables:
                    rows[table.name] = sorted(
                        json.dumps([backup.encode(v) for v in r], sort_keys=True)
                        for r in conn.execute(select(table))
                    )
        finally:
            engine.dispose()
    return rows


@pytest.fixture
def loaded(migrated: Settings, environ: dict[str, str]) -> dict[str, str]:
    """The demo platform (with the family and an audit trail) on the backend under test."""
    _make_keys(migrated)
    load_all(migrated, family=True)
    _audit_trail(migrated, 3)
    return environ


def test_backup_restores_records_consents_and_audit_elsewhere(
    loaded: dict[str, str], tmp_path: Path, db_backend: str, migrated_templates: Templates
) -> None:
    before = load_settings(loaded)
    expected, rows = _readable(before), _snapshot(before)
    assert len(expected["audit"]) == 3 and expected["consents"] and len(expected["resources"]) > 20
    archive = tmp_path / "backups" / "phr.backup"
    made = _cli(loaded, "backup", str(archive))
    assert made.exit_code == 0, made.output
    assert "keep the passphrase apart" in made.output
    blob = archive.read_bytes()
    assert b"AuditEvent" not in blob and before.secret("PHR_FHIR_DATA_KEY").encode() not in blob
    assert archive.stat().st_mode & 0o077 == 0

    elsewhere = tmp_path / "elsewhere"  # the platform is gone: a new var folder and database
    elsewhere.mkdir()
    with other_database(db_backend, elsewhere, migrated_templates) as url:
        env = make_environ(elsewhere, url)
        done = _cli(env, "restore", str(archive))
        assert done.exit_code == 0, done.output
        after = load_settings(env)
        assert _readable(after) == expected
        assert _snapshot(after) == rows
        for svc in SERVICES:
            for spec in svc.secrets:
                assert after.secret(spec.env) == before.secret(spec.env)
        # New rows get new ids: PostgreSQL's sequences were moved past the restored ones.
        assert rows["consent_change"]
        engine = make_engine(after.database_urls["consent"])
        try:
            with engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO consent_change (key, changed_at) VALUES ('new', :at)"),
                    {"at": datetime.now(UTC)},
                )
        finally:
            engine.dispose()


def test_restore_crosses_database_engines(
    loaded: dict[str, str], tmp_path: Path, db_backend: str
) -> None:
    """A city moving from SQLite to PostgreSQL (and back) restores its backup into the other."""
    if _postgres_server() is None:
        pytest.skip("PostgreSQL: no server given in PHR_TEST_DATABASE_URLS")
    expected = _readable(load_settings(loaded))
    archive = tmp_path / "phr.backup"
    assert _cli(loaded, "backup", str(archive)).exit_code == 0
    other = "postgresql" if db_backend == "sqlite" else "sqlite"
    (tmp_path / "moved").mkdir()
    with other_database(other, tmp_path / "moved") as url:
        env = make_environ(tmp_path / "moved", url)
        done = _cli(env, "restore", str(archive))
        assert done.exit_code == 0, done.output
        assert _readable(load_settings(env)) == expected


def _make_keys(settings: Settings) -> None:
    """Every development key made, as `phr dev keys` does."""
    for svc in SERVICES:
        for spec in svc.secrets:
            settings.secret(spec.env)


# The archive's format does not depend on the database engine: one backend is enough.
ONE_BACKEND = pytest.mark.parametrize("db_backend", ["sqlite"])


@pytest.fixture
def small_archive(migrated: Settings, environ: dict[str, str], tmp_path: Path) -> Path:
    """A backup of two services' demo data: enough to damage."""
    _make_keys(migrated)
    load_all(migrated)
    archive = tmp_path / "small.backup"
    made = _cli(environ, "backup", str(archive), "consent", "federation")
    assert made.exit_code == 0, made.output
    return archive


def _restore_fresh(tmp_path: Path, archive: Path, passphrase: str | None = PASSPHRASE) -> Result:
    (tmp_path / "fresh").mkdir(exist_ok=True)
    env = make_environ(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'x.db'}")
    return _cli(env, "restore", str(archive), passphrase=passphrase)


@ONE_BACKEND
def test_wrong_or_missing_passphrase_fails_loudly(small_archive: Path, tmp_path: Path) -> None:
    wrong = _restore_fresh(tmp_path, small_archive, passphrase="not the passphrase")
    assert wrong.exit_code == 1
    assert "wrong passphrase or damaged backup" in wrong.output
    assert not (tmp_path / "fresh" / "var" / "secrets").exists()
    missing = _restore_fresh(tmp_path, small_archive, passphrase=None)
    assert missing.exit_code == 1 and "no backup passphrase" in missing.output
    assert _restore_fresh(tmp_path, small_archive).exit_code == 0  # the right one still works


@ONE_BACKEND
def test_a_flipped_byte_fails_loudly(small_archive: Path, tmp_path: Path) -> None:
    data = small_archive.read_bytes()
    for at in (20, 40, 100, len(data) // 2, len(data) - 1):  # header, length, chunks, tag
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        small_archive.write_bytes(bytes(flipped))
        result = _restore_fresh(tmp_path, small_archive)
        assert result.exit_code == 1, at
        assert "wrong passphrase or damaged backup" in result.output
    assert not (tmp_path / "fresh" / "var" / "secrets").exists()


@ONE_BACKEND
def test_a_truncated_or_extended_archive_fails_loudly(small_archive: Path, tmp_path: Path) -> None:
    data = small_archive.read_bytes()
    for damaged in (data[:-1], data[: len(data) // 2], data[:50], data + b"\0"):
        small_archive.write_bytes(damaged)
        result = _restore_fresh(tmp_path, small_archive)
        assert result.exit_code == 1, len(damaged)
        assert "damaged backup" in result.output
    assert not (tmp_path / "fresh" / "var" / "secrets").exists()


@ONE_BACKEND
def test_different_existing_secrets_are_not_overwritten(
    small_archive: Path, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "fresh" / "var" / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "PHR_FEDERATION_KEY").write_text("dev-another-key\n")
    refused = _restore_fresh(tmp_path, small_archive)
    assert refused.exit_code == 1
    assert "secret PHR_FEDERATION_KEY differs from the backup's" in refused.output
    assert "dev-another-key" not in refused.output
    assert (secrets_dir / "PHR_FEDERATION_KEY").read_text() == "dev-another-key\n"


def test_a_restore_refuses_a_database_with_rows_unless_forced(
    small_archive: Path, tmp_path: Path
) -> None:
    assert _restore_fresh(tmp_path, small_archive).exit_code == 0
    again = _restore_fresh(tmp_path, small_archive)
    assert again.exit_code == 1 and "refusing to overwrite (use --force)" in again.output
    assert "database not empty: consent: " in again.output
    env = make_environ(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'x.db'}")
    forced = _cli(env, "restore", str(small_archive), "--force")
    assert forced.exit_code == 0, forced.output
    assert "overwriting consent: " in forced.output
    assert "rows restored" in forced.output


def test_a_backup_of_an_older_schema_restores_at_head(
    migrated: Settings, environ: dict[str, str], tmp_path: Path
) -> None:
    """The backup records the revision it was taken at; the restore builds that schema, loads
    the rows into it, then upgrades them to this release's head."""
    _make_keys(migrated)
    load_all(migrated)
    consent = get_service("consent")
    migrations.downgrade(consent, migrated.database_urls["consent"], "-1")
    old = _current(migrated, consent)
    assert old is not None and old != migrations.head_revision(consent)
    archive = tmp_path / "old.backup"
    assert _cli(environ, "backup", str(archive), "consent").exit_code == 0
    done = _restore_fresh(tmp_path, archive)
    assert done.exit_code == 0, done.output
    assert f"rows restored (from revision {old})" in done.output
    restored = load_settings(
        make_environ(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'x.db'}")
    )
    assert _current(restored, consent) == migrations.head_revision(consent)
    assert _readable_consents(restored) == _readable_consents(migrated)


def _current(settings: Settings, svc: ServiceSpec) -> str | None:
    engine = make_engine(settings.database_urls[svc.name])
    try:
        return migrations.current_revision(svc, engine)
    finally:
        engine.dispose()


@ONE_BACKEND
def test_restoring_one_service_writes_only_its_secrets(small_archive: Path, tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    env = make_environ(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'x.db'}")
    done = _cli(env, "restore", str(small_archive), "federation")
    assert done.exit_code == 0, done.output
    assert {p.name for p in (tmp_path / "fresh" / "var" / "secrets").iterdir()} == {
        "PHR_FEDERATION_KEY"
    }
    assert "consent" not in done.output
    missing = _cli(env, "restore", str(small_archive), "idp")
    assert missing.exit_code == 1 and "not in this backup: idp" in missing.output


def test_every_table_the_migrations_make_is_backed_up(migrated: Settings) -> None:
    """A backup takes each service's tables from its models: a table made only by a migration
    would be left out silently, so none may exist."""
    engine = make_engine(migrated.database_urls["idp"])  # the test database holds all of them
    try:
        present = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    owned = set().union(*(backup.owned_tables(svc) for svc in SERVICES))
    assert present - owned == {svc.version_table for svc in SERVICES}
