"""`phr purge`: what has expired goes from every service; what the privacy notice promises to
keep (the access history, the consent trail) stays however old it is. On both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent import records
from consent.models import ConsentVersion
from idp.models import AuthorizationCode, Grant, Person, RefreshToken
from idp.tokens import now_utc
from launcher.cli import main
from phr_core.config import Settings
from phr_core.db import Database
from phr_server import audit
from phr_server.models import DpopJti, StoredResource
from phr_server.repository import Repository
from phr_server.storage import Keyring

LONG_AGO = timedelta(days=3650)


@contextmanager
def _session(settings: Settings, service: str) -> Iterator[Session]:
    """A session on one service's database, committed, and the engine disposed."""
    db = Database(settings.database_urls[service])
    try:
        with db.session() as s:
            yield s
    finally:
        db.dispose()


def _idp_rows(settings: Settings) -> str:
    """Grants ended long ago (one still named by a live refresh token), recently, or not at all,
    and an authorization code expired two days ago. Returns the person's id."""
    now = now_utc()
    with _session(settings, "idp") as s:
        person = Person()
        s.add(person)
        s.flush()

        def grant(gid: str, **kw: object) -> Grant:
            return Grant(id=gid, person_id=person.id, client_id="app", scope="openid", **kw)

        s.add_all([
            grant("ended-long-ago", revoked_at=now - timedelta(days=100)),
            grant("expired-long-ago", expires_at=now - timedelta(days=100)),
            grant("ended-but-named", revoked_at=now - timedelta(days=100)),
            grant("ended-recently", revoked_at=now - timedelta(days=10)),
            grant("active", expires_at=now + timedelta(days=10)),
            RefreshToken(token_hash="rt", family_id="f", client_id="app",
                         person_id=person.id, scope="openid", grant_id="ended-but-named",
                         auth_time=now, acr="card", amr=["hwk"],
                         expires_at=now + timedelta(days=1)),
            AuthorizationCode(code_hash="code", client_id="app", person_id=person.id,
                              redirect_uri="https://app/cb", scope="openid",
                              code_challenge="x", auth_time=now, acr="card", amr=["hwk"],
                              expires_at=now - timedelta(days=2)),
        ])  # fmt: skip
        return person.id


def _fhir_rows(settings: Settings) -> None:
    """An AuditEvent ten years old and one of today, and two DPoP proof ids (one expired)."""
    now = now_utc()
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    with _session(settings, "fhir") as s:
        for i, when in enumerate((now - LONG_AGO, now)):
            audit.record(s, repo, {
                "resourceType": "AuditEvent", "id": f"purge-test-{i}",
                "type": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                         "code": "110110"},
                "action": "R", "recorded": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "outcome": "0", "agent": [{"requestor": True, "who": {"display": "t"}}],
                "source": {"observer": {"display": "phr-server"}},
            })  # fmt: skip
        s.add(DpopJti(jti_hash="gone", expires_at=now - timedelta(minutes=1)))
        s.add(DpopJti(jti_hash="live", expires_at=now + timedelta(minutes=5)))


def _consent_withdrawn_long_ago(settings: Settings) -> str:
    with _session(settings, "consent") as s:
        view = records.create(
            s, kind=records.RECIPIENT, subject="someone", actor="app", actor_name="App",
            categories=["vaccination"], purpose="p", recorded_by="test",
            now=now_utc() - LONG_AGO,
        )  # fmt: skip
        records.withdraw(s, view, recorded_by="test", reason="long ago")
        return view.id


def test_purge_removes_what_expired_and_keeps_the_promised_history(
    migrated: Settings, environ: dict[str, str]
) -> None:
    _idp_rows(migrated)
    _fhir_rows(migrated)
    consent_id = _consent_withdrawn_long_ago(migrated)

    done = CliRunner().invoke(main, ["--env-file", os.devnull, "purge"], env=environ)
    assert done.exit_code == 0, done.output
    lines = {" ".join(line.split()[1:]): line.split()[0] for line in done.output.splitlines()}
    assert lines["idp ended grants (IdP copy)"] == "2", done.output
    assert lines["idp authorization codes"] == "1"
    assert lines["fhir DPoP proof ids"] == "1"
    assert "kept: access history (AuditEvents), consent trail" in done.output

    with _session(migrated, "idp") as s:
        left = set(s.scalars(select(Grant.id)))
        assert left == {"ended-but-named", "ended-recently", "active"}
        assert s.scalar(select(func.count()).select_from(AuthorizationCode)) == 0
    with _session(migrated, "fhir") as s:
        events = s.scalars(
            select(StoredResource.id).where(StoredResource.resource_type == "AuditEvent")
        )
        assert set(events) == {"purge-test-0", "purge-test-1"}  # ten years old: kept
        assert set(s.scalars(select(DpopJti.jti_hash))) == {"live"}
    with _session(migrated, "consent") as s:
        versions = s.scalars(
            select(ConsentVersion.version).where(ConsentVersion.consent_id == consent_id)
        )
        assert sorted(versions) == [1, 2]  # the whole trail of a consent ended long ago
