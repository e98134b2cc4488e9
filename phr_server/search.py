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


def token_clause(rtype: str, name: str, value: str) -> ColumnElement[bool]:
    """Rows of `rtype` with a token `name` matching `value` (`system|code` forms)."""
    conds = [T.c.resource_type == R.c.resource_type, T.c.resource_id == R.c.id, T.c.param == name]
    if "|" in value:
        system, code = value.split("|", 1)
        conds.append(T.c.system == system)
        if code:
            conds.append(T.c.code == code)
    else:
        conds.append(T.c.code == value)
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


def param_clause(rtype: str, name: str, param: Param, raw: str) -> ColumnElement[bool]:
    values = raw.split(",")
    if any(v == "" for v in values):
        raise BadRequest(name, f"{name}: empty value")
    ors: list[ColumnElement[bool]] = []
    for v in values:
        if name == "_id":
            ors.append(R.c.id == v)
        elif name == "_lastUpdated":
            prefix, qs, qe = _split_prefix(name, v)
            ors.append(_date_cond(R.c.updated_us, R.c.updated_us + 1, prefix, qs, qe))
        elif param.kind == "token":
            ors.append(token_clause(rtype, name, v))
        elif param.kind == "date":
            prefix, qs, qe = _split_prefix(name, v)
            if param.by_month:  # indexed by month (birthdate): the query is read the same way
                qs, qe = whole_months(qs, qe)
            ors.append(
                exists(
                    select(1).where(
                        D.c.resource_type == R.c.resource_type,
                        D.c.resource_id == R.c.id,
                        D.c.param == name,
                        _date_cond(D.c.start_us, D.c.end_us, prefix, qs, qe),
                    )
                )
            )
        else:  # reference to a Patient
            pid = v.removeprefix("Patient/")
            if "/" in pid:
                raise BadRequest(name, f"{name}: only Patient references are searchable")
            ors.append(
                exists(
                    select(1).where(
                        C.c.resource_type == R.c.resource_type,
                        C.c.resource_id == R.c.id,
                        C.c.patient_id == pid,
                    )
                )
            )
    return or_(*ors) if len(ors) > 1 else ors[0]


@dataclass
class Query:
    rtype: str
    where: list[ColumnElement[bool]] = field(default_factory=list)
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
            q.where.append(param_clause(rtype, base, param, raw))
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
