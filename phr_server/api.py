"""The frame of every FHIR REST route (reads.py, writes.py): authenticate (authn.py) → the
policy point (phr_server.policy) → repository → answer with stored JSON bytes → AuditEvent.
Errors are OperationOutcomes. Also how an app names what it is answered about (pairwise ids,
issue 14)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from email.utils import format_datetime
from typing import Any

from flask import Response, current_app, g, request
from sqlalchemy import Engine, text

from phr_core import budgets
from phr_core.webapp import database, settings
from phr_server import (
    audit,
    authn,
    dpop,
    pairwise,
    policy,
    search,
    transaction,
)
from phr_server.audit_batch import AuditBatch, AuditUnavailable
from phr_server.claims import Raced
from phr_server.indexing import TYPES
from phr_server.policy import Access, ConsentUnavailable, Denied, NotServed, Refused
from phr_server.repository import Conflict, Found, NotFound, Repository
from phr_server.validation import Invalid

FHIR_JSON = "application/fhir+json; charset=utf-8"
RACE_ATTEMPTS = 3  # a transaction that lost an identifier race runs again (claims.py)


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        issues: list | None = None,
        dpop_error: str | None = None,
        access: Access | None = None,  # who was refused, when known: audited (handle)
    ):
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics
        self.issues = issues
        self.dpop_error = dpop_error
        self.access = access


def outcome(
    status: int,
    code: str,
    diagnostics: str,
    issues: list | None = None,
    dpop_error: str | None = None,
) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": issues or [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, content_type=FHIR_JSON)
    if status == 401:
        if dpop_error:  # RFC 9449 7.1: the DPoP challenge names the error and the algorithms
            resp.headers["WWW-Authenticate"] = (
                f'DPoP realm="phr", error="{dpop_error}", error_description="{diagnostics}",'
                f' algs="{dpop.ALGS}"'
            )
        else:
            resp.headers["WWW-Authenticate"] = (
                f'Bearer realm="phr", error="invalid_token", error_description="{diagnostics}"'
            )
    if status == 503:  # shed load: say when to come back (phr_core.budgets)
        resp.headers["Retry-After"] = str(budgets.RETRY_AFTER_S)
    return resp


def fhir(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(body, status=status, content_type=FHIR_JSON)
    resp.headers.update(headers or {})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def base_url() -> str:
    return settings().urls["fhir"]


def repo() -> Repository:
    return current_app.extensions["phr_repo"]


def read_engine() -> Engine:
    """The database engine whose connections commit each statement (app.py)."""
    return current_app.extensions["phr_read_engine"]


def audit_batch() -> AuditBatch:
    return current_app.extensions["phr_audit"]


# --- authentication -----------------------------------------------------------------------


def authenticate(s: Any, action: policy.Action, rtype: str | None = None) -> Access:
    """The request's Access from the policy point, for `action` on `rtype`, or a Problem."""
    try:
        token, raw = authn.credentials()
    except authn.Unauthenticated as exc:
        raise Problem(401, "login", str(exc), dpop_error=exc.dpop_error) from None
    ext = current_app.extensions
    sources = policy.Sources(ext["phr_consent"], ext["phr_patients"], settings())
    try:
        access = policy.authorize(token, raw, action, rtype, sources, s)
    except Refused as exc:
        if exc.access is not None:  # the caller is known: audited as the others (handle)
            exc.access.ids = pairwise.ids_for(token, ext["phr_cursor_key"])
        status, code = (404, "not-supported") if isinstance(exc, NotServed) else (403, "forbidden")
        raise Problem(status, code, str(exc), access=exc.access) from None
    except ConsentUnavailable as exc:
        raise Problem(503, "transient", str(exc)) from None
    access.ids = pairwise.ids_for(token, ext["phr_cursor_key"])
    return access


# A route's answer: the response, the references it touched, the Patients they belong to.
Answer = tuple[Response, list[str], set[str]]
Run = Callable[[Any, Access], Answer]


def handle(subtype: str, action: policy.Action, rtype: str | None, fn: Run) -> Response:
    """Run `fn` with the request's Access for `action` on `rtype` (the policy point decides
    before `fn` runs, so no route checks scopes itself), turn errors into OperationOutcomes
    and write the AuditEvent (also for failures once the caller is known).

    A read runs on a plain connection that commits each statement by itself (on PostgreSQL:
    no BEGIN and COMMIT round trips, and no ORM session to set up); once that connection is
    back in the pool, its AuditEvent is committed by the process's group commit
    (audit_batch) and only then does the response leave: no data goes out unaudited, even if
    the server is killed right after. A write runs in one transaction with its AuditEvent: it
    is never stored without its audit record."""
    db = database()
    reading = request.method == "GET"
    access: Access | None = None
    try:
        for attempt in range(RACE_ATTEMPTS):
            try:
                unit = read_engine().connect() if reading else db.session()
                with unit as s:
                    access = authenticate(s, action, rtype)
                    resp, refs, patients = fn(s, access)
                    events = _write_audit(s, access, subtype, "0", refs, patients, reading)
                audit_batch().commit(events)
                return resp
            except Raced as exc:  # a concurrent conditional create won: run again, find it
                if attempt == RACE_ATTEMPTS - 1:
                    raise Conflict(str(exc)) from None
        raise AssertionError("unreachable")
    except Problem as p:
        access = access or p.access
        resp = outcome(p.status, p.code, p.diagnostics, p.issues, p.dpop_error)
    except NotFound as exc:
        # An app is told only about the id it asked for, never the stored one behind it.
        why = f"{request.path.lstrip('/')} is not known" if access and access.ids else str(exc)
        resp = outcome(404, "not-found", why)
    except Denied as exc:
        resp = outcome(403, "forbidden", str(exc))
    except search.BadRequest as exc:
        resp = outcome(400, "invalid", str(exc), [_param_issue(exc)])
    except Invalid as exc:
        resp = outcome(400, "invalid", str(exc), exc.issues)
    except transaction.PreconditionFailed as exc:
        resp = outcome(412, "conflict", str(exc), exc.issues)
    except Conflict as exc:
        resp = outcome(409, "conflict", str(exc))
    except AuditUnavailable as exc:
        return outcome(503, "transient", str(exc))
    if access is not None:  # failures are audited too, once we know who asked
        try:
            audit_batch().commit([audit.build(access, subtype, "4", [], set(), _query_for_audit())])
        except AuditUnavailable as exc:
            return outcome(503, "transient", str(exc))
    return resp


def _write_audit(
    s: Any,
    access: Access,
    subtype: str,
    code: str,
    refs: list[str],
    patients: set[str],
    reading: bool,
) -> list[dict[str, Any]]:
    """A write's AuditEvents, stored in its own transaction `s` (nothing returned); a read's,
    returned for the group commit once its connection is released."""
    if not access.system:
        patients &= access.patient_ids
    events = _audit_events(s, access, subtype, code, refs, patients)
    if reading:
        return events
    if s.bind.dialect.name == "postgresql":
        # The server's connections commit with synchronous_commit off (app.py); a write and
        # its AuditEvent wait for the WAL flush.
        s.execute(text("SET LOCAL synchronous_commit = on"))
    audit.record_many(s, repo(), events)
    return []


def _audit_events(
    s: Any, access: Access, subtype: str, code: str, refs: list[str], patients: set[str]
) -> list[dict[str, Any]]:
    """One AuditEvent per Patient touched, naming only that Patient's resources, so the
    record a person (or guardian) can search never shows what was read of someone else."""
    query = _query_for_audit()
    if len(patients) <= 1:
        return [audit.build(access, subtype, code, refs, patients, query)]
    comp = g.pop("phr_compartments", None)  # a transaction knows what it wrote where
    if comp is None:
        comp = repo().compartments(s, refs)
    by_patient: dict[str, list[str]] = {pid: [] for pid in patients}
    placed: set[str] = set()
    for r in refs:  # one pass over the refs, not one per Patient (a Bundle has hundreds)
        for pid in comp.get("/".join(r.split("/")[:2]), ()):
            if pid in by_patient:
                by_patient[pid].append(r)
                placed.add(r)
    events = [
        audit.build(access, subtype, code, by_patient[pid], {pid}, query)
        for pid in sorted(patients)
    ]
    rest = [r for r in refs if r not in placed]
    if rest:
        events.append(audit.build(access, subtype, code, rest, set(), query))
    return events


def _param_issue(exc: search.BadRequest) -> dict[str, Any]:
    return {
        "severity": "error",
        "code": "invalid" if exc.param != "_cursor" else "processing",
        "diagnostics": str(exc),
        "expression": [exc.param],
    }


def _query_for_audit() -> str | None:
    return request.full_path if request.query_string else None


def etag_headers(f: Found, access: Access | None = None) -> dict[str, str]:
    return {
        "ETag": f'W/"{f.version}"',
        "Last-Modified": format_datetime(f.last_updated.astimezone(UTC), usegmt=True),
        "Location": f"{base_url()}/{ref_out(access, f.ref)}/_history/{f.version}",
    }


# --- pairwise ids (issue 14): an app asks and is answered in its sector's ids --------------


def stored_id(access: Access, rtype: str, rid: str) -> str:
    """The stored id behind an id in the request (an app's sector id), or 404 like an
    unknown id."""
    if access.ids is None:
        return rid
    real = access.ids.into(rtype, rid)
    if real is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    return real


def ref_out(access: Access | None, ref: str) -> str:
    return ref if access is None or access.ids is None else access.ids.ref_out(ref)


def body_out(access: Access | None, f: Found) -> bytes:
    """The resource's bytes as this request may see them (stored bytes for first parties)."""
    if access is None or access.ids is None:
        return f.body
    return pairwise.resource_out(access.ids, access.token, f.rtype, f.body)


def patients_for(s: Any, access: Access, refs: list[tuple[str, str]]) -> set[str]:
    """The Patients (of those the request may reach) whose records `refs` are, for the audit.
    Every ref here passed `Access.visible`, which for compartment types means it belongs to
    one of `access.patient_ids`: with only one, that is the answer without a query."""
    if (
        refs
        and not access.system
        and len(access.patient_ids) == 1
        and all(t == "Patient" or TYPES[t].compartment for t, _ in refs)
    ):
        return set(access.patient_ids)
    return repo().patients_of(s, refs)
