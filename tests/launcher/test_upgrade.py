"""Upgrading a city's databases from the previous release: the previous release's own code
(its tree from git, run in a child process) migrates empty databases and loads them (the demo
platform with the family, an app grant, an audit trail); then today's `phr db upgrade` brings
every service to head, and today's code reads everything: every table through today's models,
every record and AuditEvent opened with the data key, every consent rendered, the birth-date
index widened by today's migration. On SQLite and PostgreSQL.

The maintenance steps are docs/operations.md's "Upgrading": stop the services, back up,
`phr db upgrade`, start the new release; this test is the middle step on real data.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from consent import receipts, records
from idp import clients
from idp.models import Client
from launcher.cli import main
from phr_core import migrations
from phr_core.config import Settings, load_settings
from phr_core.db import Database, make_engine
from phr_core.services import SERVICES
from phr_server.dates import parse_range
from phr_server.indexing import whole_months
from phr_server.models import DateIndex, StoredResource
from phr_server.storage import Keyring
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
# The previous release: main as it stood at the end of 2026-11-26, before the 2026-12-07 round
# (which added idp_0010, fhir_0005 and consent_0005 among others). Move it forward at each
# release.
PREVIOUS = "59eb8491b1f2fee27ceae950f2480a5a33ddbad6"

# Run with the previous release's tree first on sys.path: its migrations, its demo loader, its
# consent and audit code, writing what that release wrote.
OLD_SIDE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from datetime import UTC, datetime, timedelta
from consent import records
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.db import Database
from phr_core.demo import load_all
from phr_core.services import SERVICES
from phr_server import audit
from phr_server.repository import Repository
from phr_server.storage import Keyring
assert migrations.__file__.startswith(sys.argv[1]), migrations.__file__
s = load_settings()
for svc in SERVICES:
    migrations.upgrade(svc, s.database_urls[svc.name])
load_all(s, family=True)
db = Database(s.database_urls["consent"])
with db.session() as ses:
    records.create(
        ses, kind="recipient", subject="upgrade-test-subject", actor="demo-vaccination-app",
        actor_name="Demo app", categories=["vaccination"], purpose="upgrade test",
        recorded_by="upgrade-test", scopes=["patient/Immunization.rs"],
        period_end=datetime.now(UTC) + timedelta(days=30),
    )
    ses.commit()
db.dispose()
db = Database(s.database_urls["fhir"])
repo = Repository(Keyring(s.secret("PHR_FHIR_DATA_KEY")), b"")
with db.session() as ses:
    for i in range(3):
        audit.record(ses, repo, {
            "resourceType": "AuditEvent", "id": f"upgrade-test-{i}",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
            "action": "R", "recorded": "2026-11-20T03:04:05Z", "outcome": "0",
            "agent": [{"requestor": True, "who": {"display": "upgrade test"}}],
            "source": {"observer": {"display": "phr-server"}},
        })
    ses.commit()
db.dispose()
print("previous release loaded")
"""


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's tree, from this checkout's git history."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if IN_CI:
            pytest.fail("CI runs from a git clone; the upgrade test needs its history")
        pytest.skip("not a git checkout: the previous release's tree is not at hand")
    folder = tmp_path_factory.mktemp("previous-release")
    archive = folder / "tree.tar"
    made = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), PREVIOUS],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.fail(f"commit {PREVIOUS[:7]} not in this clone (shallow?): {made.stderr}")
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return folder / "tree"


def _load_with_previous_release(tree: Path, environ: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHR_")}
    env.update(environ)
    done = subprocess.run(
        [sys.executable, "-c", OLD_SIDE, str(tree)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "previous release loaded" in done.stdout


def _revisions(settings: Settings) -> dict[str, str | None]:
    out = {}
    for svc in SERVICES:
        engine = make_engine(settings.database_urls[svc.name])
        try:
            out[svc.name] = migrations.current_revision(svc, engine)
        finally:
            engine.dispose()
    return out


def _every_table_through_todays_models(settings: Settings) -> dict[str, int]:
    """Select every column today's models name, from every table: a column a migration forgot
    fails here."""
    counts: dict[str, int] = {}
    for svc in SERVICES:
        models = importlib.import_module(f"{svc.package}.models")
        engine = make_engine(settings.database_urls[svc.name])
        try:
            with engine.connect() as conn:
                for table in models.Base.metadata.sorted_tables:
                    counts[table.name] = len(conn.execute(select(table)).all())
        finally:
            engine.dispose()
    return counts


def _records_and_audit(settings: Settings) -> dict[str, Any]:
    """Every stored resource opened with the data key by today's code, and the birth-date
    index rows next to the Patients they index."""
    db = Database(settings.database_urls["fhir"])
    keyring = Keyring(settings.secret("PHR_FHIR_DATA_KEY"))
    try:
        with db.session() as s:
            bodies: dict[str, dict[str, Any]] = {}
            for r in s.scalars(select(StoredResource)):
                raw = keyring.open(s, r.key_id, r.resource_type, r.id, r.version_id, r.body)
                bodies[f"{r.resource_type}/{r.id}"] = json.loads(raw)
            births = {
                (row.resource_type, row.resource_id): (row.start_us, row.end_us)
                for row in s.scalars(select(DateIndex).where(DateIndex.param == "birthdate"))
            }
    finally:
        db.dispose()
    return {"bodies": bodies, "births": births}


def _consents(settings: Settings) -> list[dict[str, object]]:
    db = Database(settings.database_urls["consent"])
    try:
        with db.session() as s:
            return [receipts.fhir_consent(v, settings) for v in records.current(s)]
    finally:
        db.dispose()


@pytest.fixture
def upgraded(
    previous_release: Path, environ: dict[str, str], database_url: str
) -> Iterator[Settings]:
    _load_with_previous_release(previous_release, environ)
    settings = load_settings(environ)
    before = _revisions(settings)
    assert before["fhir"] == "fhir_0004" and before["consent"] == "consent_0004", before
    done = CliRunner().invoke(main, ["--env-file", os.devnull, "db", "upgrade"], env=environ)
    assert done.exit_code == 0, done.output
    yield settings


def test_the_previous_release_upgrades_and_reads_today(upgraded: Settings) -> None:
    settings = upgraded
    assert _revisions(settings) == {s.name: migrations.head_revision(s) for s in SERVICES}

    counts = _every_table_through_todays_models(settings)
    assert counts["idp_client"] and counts["consent_record"] and counts["fhir_resource"] > 20

    # The previous release stored client secrets as SHA-256; today's IdP still verifies them
    # (and re-hashes with scrypt on the next sign-in: idp_0010 only widened the column).
    db = Database(settings.database_urls["idp"])
    try:
        with db.session() as s:
            portal = s.get(Client, settings.option("PHR_CONSENT_CLIENT_ID"))
            assert portal is not None and portal.secret_hash
            assert clients.secret_needs_rehash(portal.secret_hash)
            assert clients.verify_secret(
                portal.secret_hash, settings.secret("PHR_CONSENT_CLIENT_SECRET")
            )
    finally:
        db.dispose()

    found = _records_and_audit(settings)
    bodies = found["bodies"]
    patients = {k: v for k, v in bodies.items() if k.startswith("Patient/")}
    assert len(patients) >= 2
    audit = sorted(k for k in bodies if k.startswith("AuditEvent/"))
    assert audit == [f"AuditEvent/upgrade-test-{i}" for i in range(3)]
    assert any("birthDate" in body for body in patients.values())
    # fhir_0005 widened the birth dates the previous release indexed by day to whole months.
    for key, body in patients.items():
        if "birthDate" in body:
            index = found["births"][("Patient", key.split("/", 1)[1])]
            assert index == whole_months(*parse_range(body["birthDate"])), key

    consents = _consents(settings)
    assert consents and {c["resourceType"] for c in consents} == {"Consent"}
    grant = [c for c in consents if "upgrade test" in json.dumps(c, ensure_ascii=False)]
    assert len(grant) == 1 and grant[0]["status"] == "active", grant
