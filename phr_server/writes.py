"""The FHIR write routes: a connector's transaction Bundle (`POST /`) and a single update
(`PUT Type/id`, as a one-entry transaction), through the frame in api.py; the work is
transaction.py's. Everything else that would change data is refused (405); erasure is
erase.py's."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue

from phr_core import bounded_json, jsonbytes
from phr_server import arrivals, transaction
from phr_server.api import Answer, Problem, base_url, etag_headers, fhir, handle, outcome, repo
from phr_server.dates import instant
from phr_server.policy import Access
from phr_server.repository import Found
from phr_server.validation import Invalid

bp = Blueprint("fhir_writes", __name__)


@bp.post("/")
def transaction_endpoint() -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        bundle = _json_body()
        result = transaction.process(s, repo(), access, bundle)
        arrivals.collect(s, result.patients)
        g.phr_compartments = result.compartments  # for its AuditEvents (_audit_events)
        return _transaction_response(result), result.touched, result.patients

    resp = handle("transaction", "write", None, run)
    arrivals.flush(resp.status_code)  # after the commit: whose records arrived (arrivals.py)
    return resp


@bp.put("/<rtype>/<rid>")
def update(rtype: str, rid: str) -> ResponseReturnValue:
    """A single update, with `If-Match`, as a one-entry transaction."""

    def run(s: Any, access: Access) -> Answer:
        resource = _json_body()
        if isinstance(resource, dict) and resource.get("id") not in (None, rid):
            raise Problem(400, "invalid", "the resource's id differs from the URL")
        req: dict[str, Any] = {"method": "PUT", "url": f"{rtype}/{rid}"}
        if request.headers.get("If-Match"):
            req["ifMatch"] = request.headers["If-Match"]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": resource, "request": req}],
        }
        try:
            result = transaction.process(s, repo(), access, bundle)
        except Invalid as exc:
            for i in exc.issues:
                i["expression"] = [
                    e.replace("Bundle.entry[0].resource", rtype) for e in i.get("expression", [])
                ]
            raise
        e = result.entries[0]
        status = int(e.status.split()[0])
        body = repo().read(s, access, rtype, rid).body if e.unchanged else e.found.body
        f = e.found
        arrivals.collect(s, result.patients)
        return fhir(body, status, etag_headers(f)), result.touched, result.patients

    resp = handle("update", "write", rtype, run)
    arrivals.flush(resp.status_code)
    return resp


def _json_body() -> Any:
    try:
        return bounded_json.loads(request.get_data() or b"null")
    except bounded_json.TooDeep as exc:
        raise Problem(400, "structure", str(exc)) from None
    except ValueError:
        raise Problem(400, "structure", "the body is not JSON") from None


def _transaction_response(result: transaction.Result) -> Response:
    entries = []
    for e in result.entries:
        f = e.found
        resp: dict[str, Any] = {
            "status": e.status,
            "location": f"{f.ref}/_history/{f.version}",
            "etag": f'W/"{f.version}"',
            "lastModified": _instant(f),
        }
        if e.unchanged:
            resp["outcome"] = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "information", "code": "informational", "diagnostics": "unchanged"}
                ],
            }
        entries.append({"fullUrl": f"{base_url()}/{f.ref}", "response": resp})
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return fhir(jsonbytes.dumps(body))


def _instant(f: Found) -> str:
    dt = f.last_updated
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return instant(dt)


@bp.route("/<rtype>/<rid>", methods=["DELETE", "PATCH", "POST"])
@bp.route("/<rtype>", methods=["POST", "PUT", "DELETE", "PATCH"])
def unsupported(rtype: str, rid: str | None = None) -> ResponseReturnValue:
    return outcome(405, "not-supported", "this interaction is not supported; see /metadata")
