"""AuditEvents: one per request that carried a valid token (read, vread, history, search,
`$everything`, transaction), written by the server itself into the same encrypted store, in
the compartments of the Patients whose data was touched, so a person (and a guardian) can
search who read what. The API accepts no AuditEvent writes: they are the server's record."""

from __future__ import annotations

import base64
import functools
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, insert, text
from sqlalchemy.orm import Session

from phr_core import jsonbytes
from phr_server.dates import instant, to_us
from phr_server.indexing import TYPES, IndexValues, date_range, extract, reference_id
from phr_server.models import Base, utcnow
from phr_server.policy import Access
from phr_server.repository import Repository
from phr_server.storage import PLATFORM_SCOPE, serialize

CLIENT_SYSTEM = "urn:phr-platform:oauth-client"
SUBJECT_SYSTEM = "urn:phr-platform:phr-subject"
MAX_ENTITIES = 200

# What an app is shown of other readers in the trail (phr_server.pairwise): their role only.
ROLE_SYSTEM = "urn:phr-platform:audit-role"
PERSON_ROLES = {"self": "self", "child": "guardian"}  # the reader's relationship → role


def _client_role(access: Access) -> str:
    if access.system:  # a city's connector, or a service of the platform (an erasure)
        return "connector" if access.municipality else "service"
    return "portal" if access.token.first_party else "app"


def _role(code: str) -> dict[str, Any]:
    return {"coding": [{"system": ROLE_SYSTEM, "code": code}]}


ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "search-type": "E",
    "operation": "E",
    "transaction": "E",
    "update": "U",
}


def time_ordered_id() -> str:
    """A UUID whose first 48 bits are the time in milliseconds (the layout of RFC 9562's
    version 7), the other 74 random. AuditEvents are only ever appended: with ids in time
    order each one goes in at the end of the id indexes (resource, token, date and compartment
    rows), on the pages the previous ones dirtied, instead of on a random page of each; on the
    benchmark's SQLite that cut the audit commit's CPU per event by a tenth to a quarter
    (bench/fhir_api.md). The id tells no more than the event's own `recorded` time, and an app
    sees it only through its sector's mapping (pairwise ids)."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # the RFC's variant
    return str(uuid.UUID(bytes=bytes(raw)))


def build(
    access: Access,
    subtype: str,
    outcome: str,
    refs: list[str],
    patients: set[str],
    query: str | None = None,
) -> dict[str, Any]:
    """An AuditEvent (FHIR R4, in the style of IHE BALP) for one request."""
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110150",
                        "display": "Application",
                    }
                ]
            },
            "who": {"identifier": {"system": CLIENT_SYSTEM, "value": access.token.client_id}},
            "requestor": access.system,
            "role": [_role(_client_role(access))],
        }
    ]
    if not access.system:
        person: dict[str, Any] = {
            "who": {"identifier": {"system": SUBJECT_SYSTEM, "value": access.token.subject}},
            "requestor": True,
        }
        relation = {access.relationships.get(p) for p in patients}
        if len(relation) == 1 and (rel := relation.pop()) in PERSON_ROLES:
            person["role"] = [_role(PERSON_ROLES[rel])]  # to the Patient of this event
        agents.append(person)
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{p}"},
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "1",
            },
        }
        for p in sorted(patients)
    ]
    entities += [{"what": {"reference": r}} for r in refs[:MAX_ENTITIES]]
    if query:
        entities.append(
            {
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "2",
                },
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": time_ordered_id(),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype}],
        "action": ACTIONS.get(subtype, "E"),
        "recorded": instant(utcnow()),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "observer": {"display": "phr_server"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                }
            ],
        },
    }
    if entities:
        event["entity"] = entities
    return event


def stored_rows(
    s: Session | Connection | None, repo: Repository, event: dict[str, Any], now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """The rows `repository.put(history=False)` would write for one AuditEvent, by table
    name: for writing many at once (audit_batch.py). `s` None: the platform's data key must
    be loaded already (Keyring)."""
    resource = {**event, "meta": {"versionId": "1", "lastUpdated": instant(now)}}
    rid = resource["id"]
    keyring = repo.keyring
    key_id = keyring.current(s, PLATFORM_SCOPE)
    idx = index_values(resource)
    row = {
        "resource_type": "AuditEvent",
        "id": rid,
        "version_id": 1,
        "last_updated": now,
        "body": keyring.seal(s, key_id, "AuditEvent", rid, 1, serialize(resource)),
        "key_id": key_id,
        "municipality": PLATFORM_SCOPE,
        "content_mac": None,  # only compared when a load repeats; AuditEvents never change
        "updated_us": to_us(now),
        "sort_us": idx.sort_us,
    }
    ref = {"resource_type": "AuditEvent", "resource_id": rid}
    return {
        "fhir_resource": [row],
        "fhir_token_index": [
            {**ref, "param": p, "system": sy, "code": co} for p, sy, co in idx.tokens
        ],
        "fhir_date_index": [
            {**ref, "param": p, "start_us": a, "end_us": b} for p, a, b in idx.dates
        ],
        "fhir_compartment": [{**ref, "patient_id": p} for p in sorted(idx.patients)],
    }


# The AuditEvent search parameters index_values knows (indexing.TYPES: name, kind, paths,
# by month); if they change, every event goes to the general `extract` instead.
_KNOWN_PARAMS = (
    ("identifier", "token", ("identifier",), False),
    ("date", "date", ("recorded",), False),
    ("subtype", "token", ("subtype",), False),
    ("action", "token", ("action",), False),
    ("patient", "reference", ("entity.what",), False),  # not an index row: the compartment
)
_SPEC = TYPES["AuditEvent"]
_DIRECT = (
    tuple((p.name, p.kind, p.paths, p.by_month) for p in _SPEC.params.values()) == _KNOWN_PARAMS
    and _SPEC.compartment == ("entity.what",)
    and _SPEC.sort_param == "date"
)


def index_values(event: dict[str, Any]) -> IndexValues:
    """`indexing.extract` of an AuditEvent as `build` makes them, without walking the search
    parameters' paths: a read's audit commit builds one per read, and the general walk cost
    more than sealing the event (tests/phr_server/test_audit_ids.py holds both equal)."""
    if not _DIRECT or "identifier" in event:  # build() gives none: the general walk
        return extract(event)
    tokens = {
        ("subtype", c.get("system", "")[:255], c["code"][:255])
        for c in event.get("subtype", ())
        if isinstance(c, dict) and c.get("code")
    }
    action = event.get("action")
    if isinstance(action, str):
        tokens.add(("action", "", action[:255]))
    recorded = date_range(event["recorded"]) if event.get("recorded") else None
    dates = [("date", *recorded)] if recorded is not None else []
    patients = set()
    for entity in event.get("entity", ()):
        pid = reference_id(entity.get("what")) if isinstance(entity, dict) else None
        if pid:
            patients.add(pid)
    return IndexValues(tokens, dates, patients, dates[0][1] if dates else 0)


def record(s: Session, repo: Repository, event: dict[str, Any]) -> None:
    """Store one AuditEvent now, in the caller's transaction (writes and erasures)."""
    store(s, repo, [(event, utcnow())])


def store(
    s: Session | Connection, repo: Repository, events: list[tuple[dict[str, Any], datetime]]
) -> None:
    """Store AuditEvents, each with the time it was recorded. They have no version rows
    (written once, never changed). On PostgreSQL the resource rows and their index rows go
    in as one statement for all of them; row by row (psycopg's pipelined executemany) cost
    a third of a ms per event. `s` may be a Connection once the platform's data key exists
    (making one needs a Session: Keyring.current)."""
    rows = _rows(s, repo, events)
    dialect = s.dialect if isinstance(s, Connection) else s.get_bind().dialect
    if dialect.name != "postgresql":
        for name in TABLES:
            if rows[name]:
                s.execute(insert(Base.metadata.tables[name]), rows[name])
        return
    s.execute(_PG_INSERT, _pg_params(rows))


def store_on_driver(
    conn: Any, dialect: Dialect, repo: Repository, events: list[tuple[dict[str, Any], datetime]]
) -> None:
    """`store` on the database driver's own connection (psycopg in autocommit, or sqlite3),
    committed when it returns: the group commit's path (audit_batch.py), where SQLAlchemy's
    connection, statement and transaction handling cost more CPU than the insert itself. The
    platform's data key must be loaded already."""
    rows = _rows(None, repo, events)
    if dialect.name == "postgresql":
        # prepared at once: planned once per connection, not for every commit
        conn.execute(_PG_DRIVER_INSERT, _pg_params(rows), prepare=True)
        return
    to_text = _datetime_binder(dialect)
    for row in rows["fhir_resource"]:
        row["last_updated"] = to_text(row["last_updated"])
    cur = conn.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")  # the write lock now, not half-way through
        for name in TABLES:
            if rows[name]:
                columns = list(rows[name][0])
                cur.executemany(
                    _sqlite_insert(name, tuple(columns)),
                    [tuple(r[c] for c in columns) for r in rows[name]],
                )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()


def _rows(
    s: Session | Connection | None,
    repo: Repository,
    events: list[tuple[dict[str, Any], datetime]],
) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for event, at in events:
        for name, more in stored_rows(s, repo, event, at).items():
            rows[name] += more
    return rows


def _pg_params(rows: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The parameters of the one-statement insert: one JSON text (psycopg converting
    seventeen typed arrays cost more than the rest of the statement on the client)."""
    r, t, d, c = (rows[name] for name in TABLES)
    data = {
        "r": [
            {
                "i": x["id"],
                "lu": x["last_updated"].isoformat(),
                "b": base64.b64encode(x["body"]).decode(),
                "k": x["key_id"],
                "m": x["content_mac"],
                "u": x["updated_us"],
                "so": x["sort_us"],
            }
            for x in r
        ],
        "t": [
            {"i": x["resource_id"], "p": x["param"], "s": x["system"], "c": x["code"]} for x in t
        ],
        "d": [
            {"i": x["resource_id"], "p": x["param"], "a": x["start_us"], "b": x["end_us"]}
            for x in d
        ],
        "c": [{"i": x["resource_id"], "p": x["patient_id"]} for x in c],
    }
    return {"rows": jsonbytes.dumps(data).decode(), "muni": PLATFORM_SCOPE}


@functools.cache
def _datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """How SQLAlchemy stores `last_updated` in this database (SQLite: as text)."""
    column = Base.metadata.tables["fhir_resource"].c.last_updated
    bind = column.type.dialect_impl(dialect).bind_processor(dialect)
    return bind or (lambda value: value)


@functools.cache
def _sqlite_insert(table: str, columns: tuple[str, ...]) -> str:
    """The INSERT of `stored_rows`' rows of `table` (names of ours, never of a request)."""
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - see above


def record_many(s: Session, repo: Repository, events: list[dict[str, Any]]) -> None:
    """Store several AuditEvents now, in the caller's transaction (a transaction Bundle
    touching many Patients writes one per Patient), in the bulk statement of `store`."""
    if events:
        at = utcnow()
        store(s, repo, [(event, at) for event in events])


# Insert order: the resource rows before their index rows.
TABLES = ("fhir_resource", "fhir_token_index", "fhir_date_index", "fhir_compartment")

# The rows repository.put writes for new resources without history, in one statement.
_PG_INSERT_SQL = """
WITH j AS (SELECT CAST({rows} AS jsonb) AS v), r AS (
  INSERT INTO fhir_resource (resource_type, id, version_id, last_updated, body, key_id,
                             municipality, content_mac, updated_us, sort_us)
  SELECT 'AuditEvent', x.i, 1, x.lu, decode(x.b, 'base64'), x.k, {muni}, x.m, x.u, x.so
  FROM j, jsonb_to_recordset(j.v -> 'r')
       AS x(i varchar, lu timestamptz, b text, k integer, m varchar, u bigint, so bigint)
), t AS (
  INSERT INTO fhir_token_index (resource_type, resource_id, param, system, code)
  SELECT 'AuditEvent', x.i, x.p, x.s, x.c
  FROM j, jsonb_to_recordset(j.v -> 't') AS x(i varchar, p varchar, s varchar, c varchar)
), d AS (
  INSERT INTO fhir_date_index (resource_type, resource_id, param, start_us, end_us)
  SELECT 'AuditEvent', x.i, x.p, x.a, x.b
  FROM j, jsonb_to_recordset(j.v -> 'd') AS x(i varchar, p varchar, a bigint, b bigint)
)
INSERT INTO fhir_compartment (patient_id, resource_type, resource_id)
SELECT x.p, 'AuditEvent', x.i FROM j, jsonb_to_recordset(j.v -> 'c') AS x(i varchar, p varchar)
"""
_PG_INSERT = text(_PG_INSERT_SQL.format(rows=":rows", muni=":muni"))
_PG_DRIVER_INSERT = _PG_INSERT_SQL.format(rows="%(rows)s", muni="%(muni)s")  # psycopg's style
