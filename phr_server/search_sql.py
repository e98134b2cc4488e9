"""Search in plain SQL: the criteria search.parse made, the paging cursor and the policy's
condition (`Access.visible_sql`) written out as one SQL statement with `?` placeholders, for
the repository to run on the driver's cursor as the read by id does. Building, cache-keying
and compiling the SQLAlchemy expression cost more CPU than PostgreSQL spends answering it.

Every criterion reads as its expression in search.clause does (same tables, same comparisons,
same parameters); tests/phr_server/test_search_sql.py runs both paths on every kind of search
and compares the answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phr_server.indexing import TYPES
from phr_server.policy import Access
from phr_server.search import (
    Atom,
    DateIn,
    IdIs,
    InCompartment,
    Query,
    TokenIs,
    UpdatedIn,
)

# The columns a page needs, in repository._Row's order; the sort value follows when paging
# by a date.
COLUMNS = "r.resource_type, r.id, r.version_id, r.last_updated, r.key_id, r.body"


def _date(start: str, end: str, prefix: str, qs: int, qe: int) -> tuple[str, list[Any]]:
    """search._date_cond in SQL text."""
    eq = f"({start} >= ? AND {end} <= ?)"
    return {
        "eq": (eq, [qs, qe]),
        "ne": (f"NOT {eq}", [qs, qe]),
        "gt": (f"{end} > ?", [qe]),
        "lt": (f"{start} < ?", [qs]),
        "ge": (f"({end} > ? OR {eq})", [qe, qs, qe]),
        "le": (f"({start} < ? OR {eq})", [qs, qs, qe]),
        "sa": (f"{start} >= ?", [qe]),
        "eb": (f"{end} <= ?", [qs]),
    }[prefix]


def atom_sql(atom: Atom) -> tuple[str, list[Any]]:
    """One criterion as a condition on `fhir_resource r` and its parameters."""
    if isinstance(atom, IdIs):
        return "r.id = ?", [atom.rid]
    if isinstance(atom, UpdatedIn):
        return _date("r.updated_us", "(r.updated_us + 1)", *atom)
    if isinstance(atom, TokenIs):
        sql = (
            "EXISTS (SELECT 1 FROM fhir_token_index t WHERE t.resource_type = r.resource_type"
            " AND t.resource_id = r.id AND t.param = ?"
        )
        params: list[Any] = [atom.name]
        if atom.system is not None:
            sql += " AND t.system = ?"
            params.append(atom.system)
        if atom.code is not None:
            sql += " AND t.code = ?"
            params.append(atom.code)
        return sql + ")", params
    if isinstance(atom, DateIn):
        cond, params = _date("d.start_us", "d.end_us", atom.prefix, atom.start, atom.end)
        sql = (
            # S608: fixed SQL text; the condition holds '?' placeholders only
            "EXISTS (SELECT 1 FROM fhir_date_index d WHERE d.resource_type = r.resource_type"  # noqa: S608 - see above
            f" AND d.resource_id = r.id AND d.param = ? AND {cond})"
        )
        return sql, [atom.name, *params]
    if isinstance(atom, InCompartment):
        sql = (
            "EXISTS (SELECT 1 FROM fhir_compartment pc WHERE pc.resource_type = r.resource_type"
            " AND pc.resource_id = r.id AND pc.patient_id = ?)"
        )
        return sql, [atom.patient_id]
    raise TypeError(f"not a search criterion: {atom!r}")


def compartments_of(access: Access, rtype: str) -> frozenset[str] | None:
    """The Patients whose compartments hold every row of `rtype` this request may see, as
    Access.visible confines a person; None where nothing (or nothing else) confines them."""
    if access.system or not (rtype == "Patient" or TYPES[rtype].compartment):
        return None
    return access.patient_ids or None  # none: the policy's condition is false by itself


def _in_compartments(alias: str, pids: Sequence[str]) -> str:
    marks = ", ".join("?" * len(pids))
    # S608: fixed SQL text; only '?' placeholders are interpolated
    return (
        f"r.id IN (SELECT {alias}.resource_id FROM fhir_compartment {alias}"  # noqa: S608 - see above
        f" WHERE {alias}.resource_type = ? AND {alias}.patient_id IN ({marks}))"
    )


def where(
    q: Query, visible: tuple[str, tuple[Any, ...]], confined: frozenset[str] | None = None
) -> tuple[list[str], list[Any], bool]:
    """The conditions (to be joined by AND) of the query's rows under the policy's condition
    `visible` (from Access.visible_sql), their parameters in order, and whether a Patient's
    compartment drives the statement.

    A row's compartments are asked as `r.id IN (…)`, not as EXISTS: the same rows, but SQLite
    then starts from the compartment's index instead of walking every row of the type (1.8 s
    against 0.1 ms at a million resources). `confined` (compartments_of) adds that condition
    for a person's search that names no Patient: it repeats what `visible` already demands."""
    conds = ["r.resource_type = ?", f"({visible[0]})"]
    params: list[Any] = [q.rtype, *visible[1]]
    driven = False
    for ors in q.criteria:
        if all(isinstance(a, InCompartment) for a in ors):  # patient=a,b: one subquery
            pids = [a.patient_id for a in ors if isinstance(a, InCompartment)]
            conds.append(_in_compartments("pc", pids))
            params += [q.rtype, *pids]
            driven = True
            continue
        parts = []
        for atom in ors:
            sql, more = atom_sql(atom)
            parts.append(sql)
            params += more
        conds.append(parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")")
    if confined and not driven:
        pids = sorted(confined)
        conds.append(_in_compartments("vc", pids))
        params += [q.rtype, *pids]
        driven = True
    return conds, params, driven


def sort_sql(q: Query) -> str | None:
    """search.sort_column as SQL: the column a search pages by besides the id."""
    if q.sort == "_id":
        return None
    return "r.updated_us" if q.sort == "_lastUpdated" else "r.sort_us"


def page(
    q: Query, visible: tuple[str, tuple[Any, ...]], confined: frozenset[str] | None = None
) -> tuple[str, list[Any]]:
    """One page of matches, plus one row to tell whether there is more: the statement of
    Repository.search (keyset paging from the cursor, walking backwards for `prev`)."""
    conds, params, driven = where(q, visible, confined)
    col = sort_sql(q)
    backwards = bool(q.cursor and q.cursor["direction"] == "prev")
    asc = q.descending == backwards
    op, direction = (">", "ASC") if asc else ("<", "DESC")
    if q.cursor:
        value, rid = q.cursor["value"], q.cursor["id"]
        if col is None:
            conds.append(f"r.id {op} ?")
            params.append(rid)
        else:
            conds.append(f"({col} {op} ? OR ({col} = ? AND r.id {op} ?))")
            params += [value, value, rid]
    # A compartment's rows are few: sorted after they are found. `+col` keeps SQLite from
    # walking the whole type in the date index's order instead.
    key = col if col is None or not driven else f"+{col}"
    order = f"r.id {direction}" if key is None else f"{key} {direction}, r.id {direction}"
    cols = COLUMNS if col is None else f"{COLUMNS}, {col}"
    # S608: fixed SQL text; every value is a bound parameter
    sql = f"SELECT {cols} FROM fhir_resource r WHERE {' AND '.join(conds)} ORDER BY {order} LIMIT ?"  # noqa: S608 - see above
    return sql, [*params, q.count + 1]


def count(
    q: Query, visible: tuple[str, tuple[Any, ...]], confined: frozenset[str] | None = None
) -> tuple[str, list[Any]]:
    conds, params, _ = where(q, visible, confined)
    # S608: fixed SQL text; every value is a bound parameter
    return f"SELECT count(*) FROM fhir_resource r WHERE {' AND '.join(conds)}", params  # noqa: S608 - see above


def included_patients(
    rtype: str, ids: list[str], visible: tuple[str, tuple[Any, ...]]
) -> tuple[str, list[Any]]:
    """The Patients whose compartments hold these `rtype` resources (`_include`), under the
    policy's condition for reading Patients, in one statement."""
    marks = ", ".join("?" * len(ids))
    sql = (
        # S608: fixed SQL text; only '?' placeholders are interpolated
        f"SELECT {COLUMNS} FROM fhir_resource r WHERE r.resource_type = 'Patient'"  # noqa: S608 - see above
        " AND r.id IN (SELECT c.patient_id FROM fhir_compartment c"
        f" WHERE c.resource_type = ? AND c.resource_id IN ({marks})) AND ({visible[0]})"
        " ORDER BY r.id"
    )
    return sql, [rtype, *ids, *visible[1]]
