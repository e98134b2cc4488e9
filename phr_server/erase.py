"""`POST /$erase`: the one way a person's records leave the PHR server for good.

Writes otherwise come only from connectors (transaction.py), and nothing else deletes. When a
person deletes their account, or withdraws a city's consent and asks for what was loaded to
go, the consent service (which knows whose codes these are) asks here, as a system client of
its own: a client-credentials token with the scope `phr/erase` (no grant, no municipality)
from the client named by PHR_CONSENT_SERVICE_CLIENT_ID, sent as Bearer or, when bound to a key,
as DPoP with its proof (the same path as every route: phr_server.authn, phr_server.policy). No
other client may erase, not even a connector.

The body is a FHIR `Parameters` with one `patient` per Patient compartment to erase, named the
only way the consent service knows it: `valueIdentifier` = the city's pseudonym system and the
code. Each such Patient and everything in its compartment is deleted in one transaction:
current rows, every earlier version, and the index rows. A resource that also belongs to a
Patient not being erased stays, and only loses its place in the erased compartment.

Kept: AuditEvents (the record of who read what; they name resources, never hold their bodies)
and Provenance (which batch loaded what; it leaves the erased Patient's compartment). The
erase itself makes an AuditEvent (action `D`) naming the erased Patient ids and how many
resources went. Erasing a code that is not (or no longer) here succeeds with zero counts, so a
retry is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from phr_core import bounded_json
from phr_core.identifiers import pseudonym_system
from phr_core.webapp import database, settings
from phr_server import audit, models, tenants
from phr_server.api import Problem, authenticate, outcome, repo
from phr_server.policy import Access

PSEUDONYM_PREFIX = "urn:phr-platform:pseudonym:"
MAX_PATIENTS = 100
KEPT_TYPES = ("AuditEvent", "Provenance")

R = models.table_of(models.StoredResource)
V = models.table_of(models.ResourceVersion)
C = models.table_of(models.Compartment)
T = models.table_of(models.TokenIndex)
D = models.table_of(models.DateIndex)

bp = Blueprint("fhir_erase", __name__)


class EraseRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class Erased:
    patients: list[str] = field(default_factory=list)
    resources: int = 0
    versions: int = 0
    shared_kept: int = 0

    def parameters(self) -> dict[str, Any]:
        return {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patients", "valueInteger": len(self.patients)},
                {"name": "resources", "valueInteger": self.resources},
                {"name": "versions", "valueInteger": self.versions},
                {"name": "sharedKept", "valueInteger": self.shared_kept},
            ],
        }


def parse_targets(body: Any) -> list[tuple[str, str]]:
    """(municipality, code) pairs from the Parameters body, or EraseRefused(400)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise EraseRefused(400, "invalid", "the body must be a FHIR Parameters resource")
    params = body.get("parameter")
    if not isinstance(params, list) or not params:
        raise EraseRefused(400, "invalid", "Parameters.parameter must name at least one patient")
    if len(params) > MAX_PATIENTS:
        raise EraseRefused(400, "too-costly", f"at most {MAX_PATIENTS} patients per request")
    out = []
    for i, p in enumerate(params):
        where = f"Parameters.parameter[{i}]"
        ident = p.get("valueIdentifier") if isinstance(p, dict) else None
        if not isinstance(p, dict) or p.get("name") != "patient" or not isinstance(ident, dict):
            raise EraseRefused(400, "invalid", f"{where} must be a patient with valueIdentifier")
        system, value = ident.get("system"), ident.get("value")
        muni = system[len(PSEUDONYM_PREFIX) :] if isinstance(system, str) else ""
        if (
            not isinstance(system, str)
            or not system.startswith(PSEUDONYM_PREFIX)
            or pseudonym_system(muni) != system
            or not isinstance(value, str)
            or not 0 < len(value) <= 255
        ):
            raise EraseRefused(
                400, "invalid", f"{where}.valueIdentifier must be a city's pseudonym and code"
            )
        out.append((muni, value))
    return list(dict.fromkeys(out))


def patient_ids(s: Session, targets: list[tuple[str, str]]) -> list[str]:
    """The Patient ids carrying these pseudonym identifiers."""
    found: set[str] = set()
    for muni, code in targets:
        found.update(
            s.scalars(
                select(T.c.resource_id).where(
                    T.c.resource_type == "Patient",
                    T.c.param == "identifier",
                    T.c.system == pseudonym_system(muni),
                    T.c.code == code,
                )
            )
        )
    return sorted(found)


def erase(s: Session, pids: list[str]) -> Erased:
    """Delete these Patients and their compartments (see the module docstring)."""
    result = Erased(patients=pids)
    if not pids:
        return result
    gone = set(pids)
    members = set(
        (rtype, rid)
        for rtype, rid in s.execute(
            select(C.c.resource_type, C.c.resource_id).where(
                C.c.patient_id.in_(pids), C.c.resource_type.notin_(KEPT_TYPES)
            )
        )
    )
    members.update(("Patient", pid) for pid in pids)
    doomed: list[tuple[str, str]] = []
    shared: list[tuple[str, str]] = []
    for rtype, rid in sorted(members):
        owners = set(
            s.scalars(
                select(C.c.patient_id).where(C.c.resource_type == rtype, C.c.resource_id == rid)
            )
        )
        (shared if owners - gone else doomed).append((rtype, rid))
    for chunk in _chunks(shared):
        s.execute(
            delete(C).where(
                tuple_(C.c.resource_type, C.c.resource_id).in_(chunk), C.c.patient_id.in_(pids)
            )
        )
    result.shared_kept = len(shared)
    # The erased Patients' Provenance stays (which load wrote what) but leaves their
    # compartments: a later load under the same code starts a record without it.
    s.execute(delete(C).where(C.c.patient_id.in_(pids), C.c.resource_type == "Provenance"))
    for chunk in _chunks(doomed):
        key = tuple_(R.c.resource_type, R.c.id).in_(chunk)
        result.resources += models.rowcount(s.execute(delete(R).where(key)))
        result.versions += models.rowcount(
            s.execute(delete(V).where(tuple_(V.c.resource_type, V.c.id).in_(chunk)))
        )
        for table in (T, D, C):
            s.execute(
                delete(table).where(tuple_(table.c.resource_type, table.c.resource_id).in_(chunk))
            )
    return result


def _chunks(items: list[tuple[str, str]], size: int = 200) -> list[list[tuple[str, str]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _audit_event(access: Access, result: Erased) -> dict[str, Any]:
    event = audit.build(access, "delete", "0", [], set(result.patients))
    event["action"] = "D"
    event["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction", "code": "delete"}]
    event.setdefault("entity", []).append(
        {
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
            },
            "description": "$erase",
            "detail": [
                {"type": p["name"], "valueString": str(p["valueInteger"])}
                for p in result.parameters()["parameter"]
            ],
        }
    )
    return event


@bp.post("/$erase")
def erase_endpoint() -> ResponseReturnValue:
    try:
        # the same token and DPoP path as every route; the policy point admits only the
        # consent service (phr_server.policy.point)
        access = authenticate(None, "erase")
        try:
            body = bounded_json.loads(request.get_data() or b"null")
        except bounded_json.TooDeep as exc:
            raise EraseRefused(400, "structure", str(exc)) from None
        except ValueError:
            raise EraseRefused(400, "structure", "the body is not JSON") from None
        targets = parse_targets(body)
        why = tenants.refusal(settings(), [muni for muni, _ in targets])
        if why:  # the consent service asks each city's server for that city's people
            raise EraseRefused(422, "not-supported", why)
        with database().session() as s:
            result = erase(s, patient_ids(s, targets))
            audit.record(s, repo(), _audit_event(access, result))
    except Problem as p:
        return outcome(p.status, p.code, p.diagnostics, p.issues, p.dpop_error)
    except EraseRefused as exc:
        return outcome(exc.status, exc.code, str(exc))
    resp = Response(
        json.dumps(result.parameters()), content_type="application/fhir+json; charset=utf-8"
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp
