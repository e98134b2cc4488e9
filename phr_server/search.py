"""Search: parsing FHIR search parameters into SQL over the index tables (never over bodies).

Supported: `_id`, `_lastUpdated`, each type's parameters in `indexing.TYPES` (token values as
`code`, `system|code`, `|code`, `system|`; dates with eq/ne/lt/le/gt/ge/sa/eb and partial
dates; `patient`/`subject` as `Patient/id` or `id`), commas for OR, repeats for AND; `_count`,
`_sort` (`date` or the type's date, `_lastUpdated`, `_id`, `-` for descending), `_include` of
the subject/patient, `_summary=count`. Anything else is a 400 naming the parameter.

Paging is by keyset: the next/previous links carry a signed cursor (sort value, id), so a page
boundary stays put while other requests write."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from phr_server.dates import parse_range
from phr_server.indexing import COMMON, TYPES, Param, whole_months
from phr_server.models import Compartment, DateIndex, StoredResource, TokenIndex, table_of

R = table_of(StoredResource)
T = table_of(TokenIndex)
D = table_of(DateIndex)
C = table_of(Compartment)

DEFAULT_COUNT = 50
MAX_COUNT = 500
PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")
CONTROL = {"_count", "_sort", "_include", "_summary", "_cursor", "_format", "_total"}
# ASCII digits only: `str.isdigit()` is also true for "²" or "①", which `int()` refuses.
_COUNT_RE = re.compile(r"[0-9]{1,6}")


class BadRequest(Exception):
    """400: `param` is unknown or malformed."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


# --- criteria: what a search asks for, as plain data --------------------------------------------
# parse() turns each parameter into one of these; the expression path (`clauses`, below) and
# the plain-SQL path (search_sql.py) both render them, so the two cannot read a value apart.


class IdIs(NamedTuple):
    rid: str


class UpdatedIn(NamedTuple):
    """`_lastUpdated`: the row's update instant as the range [updated_us, updated_us + 1)."""

    prefix: str
    start: int
    end: int


class TokenIs(NamedTuple):
    """A token: `code`, `system|code`, `|code` (system ""), `system|` (code None)."""

    name: str
    system: str | None
    code: str | None


class DateIn(NamedTuple):
    name: str
    prefix: str
    start: int
    end: int


class InCompartment(NamedTuple):
    """`patient` / `subject`: the resource is in this Patient's compartment."""

    patient_id: str


Atom = IdIs | UpdatedIn | TokenIs | DateIn | InCompartment


def token_value(value: str) -> tuple[str | None, str | None]:
    """(system, code) of a token search value; None where the value leaves it open."""
    if "|" in value:
        system, code = value.split("|", 1)
        return system, code or None
    return None, value


def token_clause(rtype: str, name: str, value: str) -> ColumnElement[bool]:
    """Rows of `rtype` with a token `name` matching `value` (`system|code` forms)."""
    return _token(TokenIs(name, *token_value(value)))


def _token(atom: TokenIs) -> ColumnElement[bool]:
    conds = [T.c.resource_type == R.c.resource_type, T.c.resource_id == R.c.id]
    conds.append(T.c.param == atom.name)
    if atom.system is not None:
        conds.append(T.c.system == atom.system)
    if atom.code is not None:
        conds.append(T.c.code == atom.code)
    return exists(select(1).where(*conds))


def _date_cond(
    start: ColumnElement[int], end: ColumnElement[int], prefix: str, qs: int, qe: int
) -> ColumnElement[bool]:
    eq = and_(start >= qs, end <= qe)
    return {
        "eq": eq,
        "ne": not_(eq),
        "gt": end > qe,
        "lt": start < qs,
        "ge": or_(end > qe, eq),
        "le": or_(start < qs, eq),
        "sa": start >= qe,
        "eb": end <= qs,
    }[prefix]


def _split_prefix(name: str, raw: str) -> tuple[str, int, int]:
    prefix, value = "eq", raw
    if raw[:2] in PREFIXES:
        prefix, value = raw[:2], raw[2:]
    elif raw[:2].isalpha():
        raise BadRequest(name, f"{name}: unknown prefix {raw[:2]!r}")
    try:
        qs, qe = parse_range(value)
    except ValueError:
        raise BadRequest(name, f"{name}: {raw!r} is not a FHIR date") from None
    return prefix, qs, qe


def param_atoms(name: str, param: Param, raw: str) -> tuple[Atom, ...]:
    """The criteria one parameter asks for, any of which a row may meet (commas: OR)."""
    values = raw.split(",")
    if any(v == "" for v in values):
        raise BadRequest(name, f"{name}: empty value")
    ors: list[Atom] = []
    for v in values:
        if name == "_id":
            ors.append(IdIs(v))
        elif name == "_lastUpdated":
            ors.append(UpdatedIn(*_split_prefix(name, v)))
        elif param.kind == "token":
            ors.append(TokenIs(name, *token_value(v)))
        elif param.kind == "date":
            prefix, qs, qe = _split_prefix(name, v)
            if param.by_month:  # indexed by month (birthdate): the query is read the same way
                qs, qe = whole_months(qs, qe)
            ors.append(DateIn(name, prefix, qs, qe))
        else:  # reference to a Patient
            pid = v.removeprefix("Patient/")
            if "/" in pid:
                raise BadRequest(name, f"{name}: only Patient references are searchable")
            ors.append(InCompartment(pid))
    return tuple(ors)


def clause(atom: Atom) -> ColumnElement[bool]:
    """One criterion as an SQLAlchemy condition on `fhir_resource` (the expression path)."""
    if isinstance(atom, IdIs):
        return R.c.id == atom.rid
    if isinstance(atom, UpdatedIn):
        return _date_cond(R.c.updated_us, R.c.updated_us + 1, *atom)
    if isinstance(atom, TokenIs):
        return _token(atom)
    if isinstance(atom, DateIn):
        return exists(
            select(1).where(
                D.c.resource_type == R.c.resource_type,
                D.c.resource_id == R.c.id,
                D.c.param == atom.name,
                _date_cond(D.c.start_us, D.c.end_us, atom.prefix, atom.start, atom.end),
            )
        )
    return exists(
        select(1).where(
            C.c.resource_type == R.c.resource_type,
            C.c.resource_id == R.c.id,
            C.c.patient_id == atom.patient_id,
        )
    )


def clauses(q: Query) -> list[ColumnElement[bool]]:
    """The query's criteria as SQLAlchemy conditions (AND of ORs)."""
    out = []
    for ors in q.criteria:
        parts = [clause(a) for a in ors]
        out.append(or_(*parts) if len(parts) > 1 else parts[0])
    return out


@dataclass
class Query:
    rtype: str
    criteria: list[tuple[Atom, ...]] = field(default_factory=list)  # AND of ORs
    count: int = DEFAULT_COUNT
    sort: str = "_id"  # _id | _lastUpdated | <date param>
    descending: bool = False
    include_patients: bool = False
    summary_count: bool = False
    cursor: dict | None = None
    canonical: list[tuple[str, str]] = field(default_factory=list)  # for links


def parse(rtype: str, args: list[tuple[str, str]], cursor_key: bytes) -> Query:
    """A Query from the request's (name, value) pairs, or BadRequest naming the parameter."""
    spec = TYPES[rtype]
    q = Query(rtype)
    for name, raw in args:
        base, _, modifier = name.partition(":")
        if "\x00" in raw:  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500
            raise BadRequest(base, f"{base}: a value must not contain NUL")
        if base == "_count":
            if not _COUNT_RE.fullmatch(raw) or not 0 < int(raw) <= MAX_COUNT:
                raise BadRequest("_count", f"_count must be a whole number from 1 to {MAX_COUNT}")
            q.count = int(raw)
        elif base == "_sort":
            desc = raw.startswith("-")
            key = raw.lstrip("-")
            if key == "date" and spec.sort_param:
                key = spec.sort_param
            if key not in ("_id", "_lastUpdated") and key != spec.sort_param:
                raise BadRequest(
                    "_sort",
                    f"_sort: {rtype} can be sorted by _id, _lastUpdated"
                    + (f", date ({spec.sort_param})" if spec.sort_param else ""),
                )
            q.sort, q.descending = key, desc
        elif base == "_include":
            if raw not in (f"{rtype}:patient", f"{rtype}:subject") or "patient" not in spec.params:
                raise BadRequest("_include", f"_include: only {rtype}:patient / :subject")
            q.include_patients = True
        elif base == "_summary":
            if raw not in ("count", "false"):
                raise BadRequest("_summary", "_summary: only count or false")
            q.summary_count = raw == "count"
        elif base == "_total":
            if raw not in ("none", "accurate"):
                raise BadRequest("_total", "_total: none or accurate")
        elif base == "_format":
            if raw not in ("json", "application/json", "application/fhir+json"):
                raise BadRequest("_format", "_format: only JSON is served")
        elif base == "_cursor":
            q.cursor = read_cursor(raw, cursor_key)
            continue
        else:
            param = COMMON.get(base) or spec.params.get(base)
            if param is None:
                raise BadRequest(base, f"unknown search parameter {base!r} for {rtype}")
            if modifier:
                raise BadRequest(name, f"{name}: modifiers are not supported")
            q.criteria.append(param_atoms(base, param, raw))
        if base != "_cursor":
            q.canonical.append((name, raw))
    return q


def sort_column(q: Query) -> ColumnElement[int] | None:
    """The column a search pages by, besides the id (None: by id alone)."""
    if q.sort == "_id":
        return None
    if q.sort == "_lastUpdated":
        return R.c.updated_us
    return R.c.sort_us


def make_cursor(key: bytes, sort_value: int | None, rid: str, direction: str) -> str:
    payload = json.dumps([sort_value, rid, direction], separators=(",", ":")).encode()
    sig = hmac.new(key, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(sig + payload).decode().rstrip("=")


def read_cursor(raw: str, key: bytes) -> dict:
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        sig, payload = blob[:12], blob[12:]
        if not hmac.compare_digest(sig, hmac.new(key, payload, hashlib.sha256).digest()[:12]):
            raise ValueError
        value, rid, direction = json.loads(payload)
    except (ValueError, TypeError):
        raise BadRequest("_cursor", "_cursor: not a link this server made") from None
    return {"value": value, "id": rid, "direction": direction}
