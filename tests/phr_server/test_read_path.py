"""The lean read path: AuditEvents without version rows still answer vread and history, a
person with one Patient is audited without a compartment query, and on PostgreSQL the
server's connections commit reads without a WAL flush while writes stay durable."""

from __future__ import annotations

from sqlalchemy import func, select, text

from phr_server.models import ResourceVersion
from tests.phr_server.conftest import World


def test_one_patients_read_names_that_patient_and_its_audit_event_has_one_version(
    world: World, family: dict[str, str]
) -> None:
    child = world.user("sub-child", codes=[("C1", "self")])
    assert world.get("/" + family["urn:uuid:o3"], child).status_code == 200
    events = world.get("/AuditEvent?subtype=read", child).get_json()["entry"]
    event = events[0]["resource"]
    assert event["outcome"] == "0"
    what = {x["what"]["reference"] for x in event["entity"] if "what" in x}
    assert what == {family["urn:uuid:o3"], family["urn:uuid:c1"]}
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
