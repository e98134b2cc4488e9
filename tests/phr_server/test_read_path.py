"""The lean read path: AuditEvents without version rows still answer vread and history, a
person with one Patient is audited without a compartment query, on PostgreSQL the server's
connections commit reads without a WAL flush while writes stay durable, and the read by id in
plain SQL sees exactly what the policy expression sees."""

from __future__ import annotations

import json

from sqlalchemy import func, select, text

from phr_core.tokens import AccessToken
from phr_server.models import ResourceVersion, StoredResource
from phr_server.policy import Access, PatientLink, parse_scope
from phr_server.repository import NotFound
from tests.phr_server.conftest import CATEGORY, MUNI, World, access_shapes


def test_one_patients_read_names_that_patient_and_its_audit_event_has_one_version(
    world: World, family: dict[str, str]
) -> None:
    child = world.user("sub-child", codes=[("C1", "self")])
    assert world.get(world.path(family["urn:uuid:o3"]), child).status_code == 200
    events = world.get("/AuditEvent?subtype=read", child).get_json()["entry"]
    event = events[0]["resource"]
    assert event["outcome"] == "0"
    what = {x["what"]["reference"] for x in event["entity"] if "what" in x}
    assert what == {world.ref(family["urn:uuid:o3"]), world.ref(family["urn:uuid:c1"])}
    aid = event["id"]
    vread = world.get(f"/AuditEvent/{aid}/_history/1", child)
    assert vread.status_code == 200 and vread.get_json() == event
    assert world.get(f"/AuditEvent/{aid}/_history/2", child).status_code == 404
    history = world.get(f"/AuditEvent/{aid}/_history", child).get_json()
    assert [e["resource"]["id"] for e in history["entry"]] == [aid]
    with world.app.app_context():
        from phr_core.webapp import database

        with database().session() as s:
            rows = s.scalar(
                select(func.count())
                .select_from(ResourceVersion)
                .where(ResourceVersion.resource_type == "AuditEvent")
            )
    assert rows == 0


def test_postgresql_connections_commit_reads_asynchronously(world: World) -> None:
    with world.app.app_context():
        from phr_core.webapp import database

        db = database()
        if db.engine.dialect.name != "postgresql":
            return  # SQLite: WAL with synchronous=NORMAL for every service (phr_core.db)
        with db.session() as s:
            assert s.scalar(text("SHOW synchronous_commit")) == "off"


def test_the_lean_read_sees_exactly_what_the_policy_expression_sees(
    world: World, family: dict[str, str]
) -> None:
    """Repository.read runs Access.visible_sql as plain SQL; for every request shape and every
    stored resource it must agree with Access.visible, the expression search uses."""
    repo = world.app.extensions["phr_repo"]
    R = StoredResource.__table__
    with world.app.app_context():
        from phr_core.webapp import database

        with database().session() as s:
            rows = s.execute(select(R.c.resource_type, R.c.id)).all()
            assert {t for t, _ in rows} >= {"Patient", "Observation", "Immunization", "Provenance"}
            for name, access in access_shapes(family).items():
                for rtype, rid in rows:
                    if rtype == "AuditEvent":
                        continue
                    assert access.visible_sql(rtype, "r") is not None
                    expected = (
                        s.execute(
                            select(R.c.id).where(
                                R.c.resource_type == rtype,
                                R.c.id == rid,
                                access.visible(rtype, "r"),
                            )
                        ).first()
                        is not None
                    )
                    try:
                        found = repo.read(s, access, rtype, rid)
                    except NotFound:
                        seen = False
                    else:
                        seen = True
                        assert (found.rtype, found.id, found.version) == (rtype, rid, 1)
                        assert found.last_updated.tzinfo is not None
                        assert json.loads(found.body)["id"] == rid
                    assert seen == expected, (name, rtype)


def test_granular_scopes_keep_the_expression_path(world: World, family: dict[str, str]) -> None:
    scope = f"patient/Observation.rs?category={CATEGORY}|laboratory"
    token = AccessToken("sub", "app", frozenset({scope}), 2**31, grant_id="g")
    access = Access(token, "raw", [s for s in map(parse_scope, token.scopes) if s])
    assert access.visible_sql("Observation", "r") is None
    child = world.user("sub-child", scope)
    world.consent.links["sub-child"] = [PatientLink(MUNI, "C1", "self")]
    assert world.get(world.path(family["urn:uuid:o4"]), child).status_code == 200  # laboratory
    assert world.get(world.path(family["urn:uuid:o3"]), child).status_code == 404  # vital signs
