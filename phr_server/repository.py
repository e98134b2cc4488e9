"""The repository: every way a resource leaves the database goes through here, and each one
takes its SQL condition from `Access.visible()` (phr_server.policy). Writes are `put()`; the index
tables, history and the sealed body change together in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from phr_server import search_sql
from phr_server.bulk import insert_rows
from phr_server.dates import instant, to_us
from phr_server.indexing import TYPES, extract
from phr_server.models import (
    Compartment,
    DateIndex,
    ResourceVersion,
    StoredResource,
    TokenIndex,
    rowcount,
    table_of,
    utcnow,
)
from phr_server.policy import Access
from phr_server.search import Query, clauses, make_cursor, sort_column
from phr_server.storage import Keyring, canonical, serialize

R = table_of(StoredResource)
V = table_of(ResourceVersion)
C = table_of(Compartment)
T = table_of(TokenIndex)
D = table_of(DateIndex)

# What the read methods run on: the request's Session, or a plain Connection for GETs.
Reader = Session | Connection

EVERYTHING_LIMIT = 5000
# Types written once and never changed: no version rows (see put(history=False)).
UNVERSIONED = frozenset({"AuditEvent"})


class NotFound(Exception):
    """404: no such resource, or none this request may see (the two look the same)."""


class Conflict(Exception):
    """409: someone else changed the resource at the same moment; retry."""


@dataclass
class Found:
    rtype: str
    id: str
    version: int
    last_updated: datetime
    body: bytes  # the stored JSON bytes
    patients: frozenset[str] = frozenset()  # its compartments, when just written (put_many)

    @property
    def ref(self) -> str:
        return f"{self.rtype}/{self.id}"


@dataclass
class Page:
    matches: list[Found]
    includes: list[Found]
    next_cursor: str | None
    prev_cursor: str | None


_COLS = (R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.key_id, R.c.body)

# The read by id as plain SQL (`?` placeholders) around Access.visible_sql's condition.
_READ_SQL = (
    "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.key_id, r.body"
    " FROM fhir_resource r WHERE r.resource_type = ? AND r.id = ? AND ({})"
)


class _Row(NamedTuple):
    resource_type: str
    id: str
    version_id: int
    last_updated: Any
    key_id: int | None
    body: bytes
    sort: int | None = None  # the value a search page is sorted by (besides the id)


class Repository:
    def __init__(self, keyring: Keyring, cursor_key: bytes) -> None:
        self.keyring = keyring
        self.cursor_key = cursor_key
        # False: every search is built as an expression (search_expression), the general path
        # the plain-SQL one is compared with (tests/phr_server/test_search_sql.py).
        self.plain_search = True
        self._dates: dict[str, Callable[[Any], Any] | None] = {}  # dialect -> converter

    def _found(self, s: Reader, row: Any) -> Found:
        body = self.keyring.open(s, row.key_id, row.resource_type, row.id, row.version_id, row.body)
        lu = row.last_updated
        if lu.tzinfo is None:  # SQLite hands back naive UTC
            lu = lu.replace(tzinfo=UTC)
        return Found(row.resource_type, row.id, row.version_id, lu, body)

    def _found_many(self, s: Reader, rows: list[Any]) -> list[Found]:
        """The resources of a page of rows, opened one after the other with the data keys
        the keyring holds (a page of one city is one key)."""
        open_, out = self.keyring.open, []
        for r in rows:
            lu = r.last_updated
            if lu.tzinfo is None:  # SQLite hands back naive UTC
                lu = lu.replace(tzinfo=UTC)
            body = open_(s, r.key_id, r.resource_type, r.id, r.version_id, r.body)
            out.append(Found(r.resource_type, r.id, r.version_id, lu, body))
        return out

    # --- reads --------------------------------------------------------------------------------

    def read(self, s: Reader, access: Access, rtype: str, rid: str) -> Found:
        visible = access.visible_sql(rtype, "r")
        row: Any  # a Row, or the driver's row as a _Row (both have the same fields)
        if visible is None:  # granular scopes: their conditions come from the search code
            row = s.execute(
                select(*_COLS).where(
                    R.c.resource_type == rtype, R.c.id == rid, access.visible(rtype, "r")
                )
            ).first()
        else:
            condition, params = visible
            row = self._fetch_one(s, condition, (rtype, rid, *params))
        if row is None:
            raise NotFound(f"{rtype}/{rid} is not known")
        return self._found(s, row)

    def _fetch_one(self, s: Reader, condition: str, params: tuple[Any, ...]) -> _Row | None:
        """The read by id through the driver's cursor on the session's connection: the
        SQLAlchemy statement machinery cost ten times the query itself."""
        rows = self._fetch(s, _READ_SQL.format(condition), params)
        return rows[0] if rows else None

    def _fetch(self, s: Reader, sql: str, params: Sequence[Any]) -> list[_Row]:
        """Resource rows (the columns of _Row) of a plain SQL statement, the result converter
        of the column type applied as SQLAlchemy would (SQLite stores datetimes as text)."""
        conn = s if isinstance(s, Connection) else s.connection()
        dialect = conn.dialect
        if dialect.name not in self._dates:
            impl = R.c.last_updated.type.dialect_impl(dialect)
            self._dates[dialect.name] = impl.result_processor(dialect, None)
        convert = self._dates[dialect.name]
        found = self._execute(conn, sql, params)
        if convert is None:
            return [_Row(*r) for r in found]
        return [_Row(t, i, v, convert(lu), k, b, *rest) for t, i, v, lu, k, b, *rest in found]

    def _execute(self, conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of a plain SQL statement (`?` placeholders) run on the driver's cursor of
        `conn`, without SQLAlchemy's statement machinery."""
        dialect = conn.dialect
        if dialect.paramstyle != "qmark":  # psycopg: %s (the text holds no other ? or %)
            sql = sql.replace("?", "%s")
        driver = conn.connection.driver_connection
        if driver is None:  # a checked-out connection always has one
            raise RuntimeError("the database connection is closed")
        # psycopg: rows in binary format (a body arrives as its bytes, not as hex text)
        cur = driver.cursor(binary=True) if dialect.name == "postgresql" else driver.cursor()
        try:
            cur.execute(sql, tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def vread(self, s: Reader, access: Access, rtype: str, rid: str, vid: int) -> Found:
        current = self.read(s, access, rtype, rid)  # the policy judges it by its current row
        if current.version == vid and rtype in UNVERSIONED:
            return current
        row = s.execute(
            select(
                V.c.resource_type, V.c.id, V.c.version_id, V.c.last_updated, V.c.key_id, V.c.body
            ).where(V.c.resource_type == rtype, V.c.id == rid, V.c.version_id == vid)
        ).first()
        if row is None:
            raise NotFound(f"{rtype}/{rid}/_history/{vid} is not known")
        return self._found(s, row)

    def history(self, s: Reader, access: Access, rtype: str, rid: str) -> list[Found]:
        current = self.read(s, access, rtype, rid)
        if rtype in UNVERSIONED:
            return [current]
        rows = s.execute(
            select(
                V.c.resource_type, V.c.id, V.c.version_id, V.c.last_updated, V.c.key_id, V.c.body
            )
            .where(V.c.resource_type == rtype, V.c.id == rid)
            .order_by(V.c.version_id.desc())
        )
        return [self._found(s, r) for r in rows]

    def count(self, s: Reader, access: Access, q: Query) -> int:
        visible = access.visible_sql(q.rtype, "s") if self.plain_search else None
        if visible is not None:
            conn = s if isinstance(s, Connection) else s.connection()
            confined = search_sql.compartments_of(access, q.rtype)
            return int(self._execute(conn, *search_sql.count(q, visible, confined))[0][0])
        where = [access.visible(q.rtype, "s"), *clauses(q)]
        return s.scalar(select(func.count()).select_from(R).where(*where)) or 0

    def search(self, s: Reader, access: Access, q: Query) -> Page:
        """One page of a search. In plain SQL (search_sql.py) wherever the policy's condition
        has a plain-SQL form (every shape but granular scopes), else as an expression: both
        give the same page (tests/phr_server/test_search_sql.py)."""
        visible = access.visible_sql(q.rtype, "s") if self.plain_search else None
        if visible is None:
            return self.search_expression(s, access, q)
        confined = search_sql.compartments_of(access, q.rtype)
        rows = self._fetch(s, *search_sql.page(q, visible, confined))
        return self._page(s, access, q, rows, lambda r: r.sort)

    def search_expression(self, s: Reader, access: Access, q: Query) -> Page:
        """A page built as an SQLAlchemy expression: the general path, for any Access."""
        col = sort_column(q)
        cond = [access.visible(q.rtype, "s"), *clauses(q)]
        backwards = bool(q.cursor and q.cursor["direction"] == "prev")
        asc = q.descending == backwards  # the direction we walk the index in
        if q.cursor:
            v, rid = q.cursor["value"], q.cursor["id"]
            after = (lambda a, b: a > b) if asc else (lambda a, b: a < b)
            if col is None:
                cond.append(after(R.c.id, rid))
            else:
                cond.append(or_(after(col, v), and_(col == v, after(R.c.id, rid))))
        order = [] if col is None else [col.asc() if asc else col.desc()]
        order.append(R.c.id.asc() if asc else R.c.id.desc())
        sel = select(*_COLS, *([col] if col is not None else [])).where(*cond)
        rows = list(s.execute(sel.order_by(*order).limit(q.count + 1)))
        return self._page(s, access, q, rows, lambda r: None if col is None else r[-1])

    def _page(
        self,
        s: Reader,
        access: Access,
        q: Query,
        rows: list[Any],
        key: Callable[[Any], int | None],
    ) -> Page:
        """The page from up to `q.count + 1` rows in the order walked: cursors, the
        resources opened, and the Patients included when asked."""
        backwards = bool(q.cursor and q.cursor["direction"] == "prev")
        more = len(rows) > q.count
        rows = rows[: q.count]
        if backwards:
            rows.reverse()
        nxt = prv = None
        if rows:
            first, last = rows[0], rows[-1]
            if (more and not backwards) or backwards:
                nxt = make_cursor(self.cursor_key, key(last), last.id, "next")
            if (more and backwards) or (q.cursor and not backwards):
                prv = make_cursor(self.cursor_key, key(first), first.id, "prev")
        matches = self._found_many(s, rows)
        includes: list[Found] = []
        if q.include_patients and matches and access.allows("Patient", "r"):
            includes = self._included_patients(s, access, q.rtype, [m.id for m in matches])
        return Page(matches, includes, nxt, prv)

    def _included_patients(
        self, s: Reader, access: Access, rtype: str, ids: list[str]
    ) -> list[Found]:
        """The Patients (that the request may read) whose compartments hold these."""
        visible = access.visible_sql("Patient", "r") if self.plain_search else None
        if visible is not None:
            return self._found_many(
                s, self._fetch(s, *search_sql.included_patients(rtype, ids, visible))
            )
        pids = self.patients_of(s, [(rtype, i) for i in ids])
        if not pids:
            return []
        inc = s.execute(
            select(*_COLS).where(
                R.c.resource_type == "Patient",
                R.c.id.in_(sorted(pids)),
                access.visible("Patient", "r"),
            )
        )
        return self._found_many(s, list(inc))

    def everything(
        self, s: Reader, access: Access, pid: str, cut: list[str] | None = None
    ) -> list[Found]:
        """The Patient and its compartment, at most EVERYTHING_LIMIT of each type; the types
        that reached the limit are appended to `cut`, so the answer can say it is incomplete."""
        out = [self.read(s, access, "Patient", pid)]
        for rtype, spec in TYPES.items():
            if rtype in ("Patient", "AuditEvent") or not spec.compartment:
                continue  # the audit trail is searched on its own, not part of the record
            perm = "s" if access.allows(rtype, "s") else "r"
            rows = s.execute(
                select(*_COLS)
                .where(
                    R.c.resource_type == rtype,
                    access.visible(rtype, perm),
                    R.c.id.in_(
                        select(C.c.resource_id).where(
                            C.c.resource_type == rtype, C.c.patient_id == pid
                        )
                    ),
                )
                .order_by(R.c.sort_us, R.c.id)
                .limit(EVERYTHING_LIMIT)
            )
            found = [self._found(s, r) for r in rows]
            if cut is not None and len(found) >= EVERYTHING_LIMIT:
                cut.append(rtype)
            out.extend(found)
        return out

    def patients_of(self, s: Reader, refs: list[tuple[str, str]]) -> set[str]:
        """The Patient ids whose compartments hold these resources."""
        if not refs:
            return set()
        out: set[str] = set()
        by_type: dict[str, list[str]] = {}
        for t, i in refs:
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            for chunk in range(0, len(ids), 500):
                out.update(
                    s.scalars(
                        select(C.c.patient_id).where(
                            C.c.resource_type == t, C.c.resource_id.in_(ids[chunk : chunk + 500])
                        )
                    )
                )
        return out

    def compartments(self, s: Reader, refs: list[str]) -> dict[str, set[str]]:
        """`Type/id` (a `/_history/n` suffix is ignored) → the Patient ids it belongs to."""
        out: dict[str, set[str]] = {}
        by_type: dict[str, list[str]] = {}
        for ref in refs:
            t, i = ref.split("/")[:2]
            by_type.setdefault(t, []).append(i)
        for t, ids in by_type.items():
            for chunk in range(0, len(ids), 500):
                rows = s.execute(
                    select(C.c.resource_id, C.c.patient_id).where(
                        C.c.resource_type == t, C.c.resource_id.in_(ids[chunk : chunk + 500])
                    )
                )
                for rid, pid in rows:
                    out.setdefault(f"{t}/{rid}", set()).add(pid)
        return out

    # --- writes -------------------------------------------------------------------------------

    def current(self, s: Session, rtype: str, rid: str) -> StoredResource | None:
        return s.get(StoredResource, (rtype, rid))

    def current_many(
        self, s: Session, refs: set[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredResource]:
        """The current rows of many resources, one query per type (a transaction's targets)."""
        by_type: dict[str, list[str]] = {}
        for t, i in sorted(refs):
            by_type.setdefault(t, []).append(i)
        out: dict[tuple[str, str], StoredResource] = {}
        for t, ids in by_type.items():
            for chunk in range(0, len(ids), 500):
                rows = s.scalars(
                    select(StoredResource).where(
                        StoredResource.resource_type == t,
                        StoredResource.id.in_(ids[chunk : chunk + 500]),
                    )
                )
                out.update(((r.resource_type, r.id), r) for r in rows)
        return out

    def unchanged(self, s: Session, row: StoredResource, resource: dict[str, Any]) -> bool:
        if row.key_id is None or row.content_mac is None:
            return False
        return self.keyring.content_mac(s, row.key_id, canonical(resource)) == row.content_mac

    def put(
        self,
        s: Session,
        resource: dict[str, Any],
        scope: str,
        prev: StoredResource | None,
        now: datetime | None = None,
        history: bool = True,
    ) -> Found:
        """Store `resource` (its id set) as a new version with its index rows. `history`
        False: no row in the version table (AuditEvents, written once and never changed, are
        their own only version; vread and history fall back to the current row)."""
        return self.put_many(s, [(resource, scope, prev)], now, history=history)[0]

    def put_many(
        self,
        s: Session,
        items: list[tuple[dict[str, Any], str, StoredResource | None]],
        now: datetime | None = None,
        history: bool = True,
    ) -> list[Found]:
        """Store each (resource, scope, previous row) as a new version with its index rows, in
        a handful of statements for the lot: one executemany per table for new rows, one
        guarded UPDATE per changed resource (optimistic locking), one DELETE per type for the
        index rows those replace. A transaction Bundle's writes cost a few round trips, not a
        few per resource."""
        now = now or utcnow()
        updated_us = to_us(now)
        found: list[Found] = []
        fresh: list[dict[str, Any]] = []
        versions: list[dict[str, Any]] = []
        tokens: list[dict[str, Any]] = []
        dates: list[dict[str, Any]] = []
        comps: list[dict[str, Any]] = []
        replaced: dict[str, list[str]] = {}
        for resource, scope, prev in items:
            rtype, rid = resource["resourceType"], resource["id"]
            version = (prev.version_id + 1) if prev else 1
            meta = dict(resource.get("meta") or {})
            meta["versionId"] = str(version)
            meta["lastUpdated"] = instant(now)
            resource = {**resource, "meta": meta}
            body = serialize(resource)
            key_id = self.keyring.current(s, scope)
            mac = self.keyring.content_mac(s, key_id, canonical(resource))
            sealed = self.keyring.seal(s, key_id, rtype, rid, version, body)
            idx = extract(resource)
            values = dict(
                version_id=version,
                last_updated=now,
                body=sealed,
                key_id=key_id,
                municipality=scope,
                content_mac=mac,
                updated_us=updated_us,
                sort_us=idx.sort_us,
            )
            if prev is None:
                fresh.append(dict(resource_type=rtype, id=rid, **values))
            else:
                done = s.execute(
                    update(R)
                    .where(
                        R.c.resource_type == rtype,
                        R.c.id == rid,
                        R.c.version_id == prev.version_id,
                    )
                    .values(**values)
                )
                if rowcount(done) != 1:
                    raise Conflict(f"{rtype}/{rid} changed meanwhile")
                replaced.setdefault(rtype, []).append(rid)
            if history:
                versions.append(
                    dict(
                        resource_type=rtype,
                        id=rid,
                        version_id=version,
                        last_updated=now,
                        key_id=key_id,
                        body=sealed,
                    )
                )
            tokens.extend(
                dict(resource_type=rtype, resource_id=rid, param=p, system=sy, code=co)
                for p, sy, co in idx.tokens
            )
            dates.extend(
                dict(resource_type=rtype, resource_id=rid, param=p, start_us=a, end_us=b)
                for p, a, b in idx.dates
            )
            comps.extend(
                dict(patient_id=p, resource_type=rtype, resource_id=rid) for p in idx.patients
            )
            found.append(Found(rtype, rid, version, now, body, frozenset(idx.patients)))
        for rtype, ids in replaced.items():  # the old version's index rows go
            for chunk in range(0, len(ids), 500):
                for table in (T, D, C):
                    s.execute(
                        delete(table).where(
                            table.c.resource_type == rtype,
                            table.c.resource_id.in_(ids[chunk : chunk + 500]),
                        )
                    )
        for table, rows in ((R, fresh), (V, versions), (T, tokens), (D, dates), (C, comps)):
            insert_rows(s, table, rows)  # COPY on PostgreSQL (bulk.py)
        s.expire_all()
        return found


def new_id() -> str:
    return str(uuid.uuid4())
