"""Required bindings (the codes the R4 specification fixes for an element) that the
fhir.resources models do not check: per resource type, of CodeableConcepts, and of data types
wherever they occur (Observation.status "bogus", Patient.gender "x", HumanName.use …)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from phr_server.issues import issue

REQUEST_STATUS = {"draft", "active", "cancelled", "entered-in-error"}
ADMIN_GENDER = {"male", "female", "other", "unknown"}
CODES: dict[str, dict[str, set[str]]] = {
    "Patient": {
        "gender": ADMIN_GENDER,
        "link.type": {"replaced-by", "replaces", "refer", "seealso"},
    },
    "RelatedPerson": {"gender": ADMIN_GENDER},
    "Observation": {
        "status": {
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    },
    "Immunization": {"status": {"completed", "entered-in-error", "not-done"}},
    "Encounter": {
        "status": (
            enc := {
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            }
        ),
        "statusHistory.status": enc,
        "location.status": {"planned", "active", "reserved", "completed"},
    },
    "Procedure": {
        "status": {
            "preparation",
            "in-progress",
            "not-done",
            "on-hold",
            "stopped",
            "completed",
            "entered-in-error",
            "unknown",
        }
    },
    "MedicationDispense": {
        "status": {
            "preparation",
            "in-progress",
            "cancelled",
            "on-hold",
            "completed",
            "entered-in-error",
            "stopped",
            "declined",
            "unknown",
        }
    },
    "Claim": {
        "status": REQUEST_STATUS,
        "use": (use := {"claim", "preauthorization", "predetermination"}),
    },
    "ExplanationOfBenefit": {
        "status": REQUEST_STATUS,
        "use": use,
        "outcome": {"queued", "complete", "error", "partial"},
    },
    "Coverage": {"status": REQUEST_STATUS},
    "Consent": {
        "status": {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"},
        "provision.type": {"deny", "permit"},
        "provision.data.meaning": {"instance", "related", "dependents", "authoredby"},
    },
    "AuditEvent": {"action": {"C", "R", "U", "D", "E"}, "outcome": {"0", "4", "8", "12"}},
    "Organization": {},
    "Provenance": {},
}

# CodeableConcepts with a required binding: codings in the bound system must use its codes,
# and at least one coding must be from it.
CONCEPTS: dict[str, dict[str, tuple[str, set[str]]]] = {
    "Condition": {
        "clinicalStatus": (
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            {"active", "recurrence", "relapse", "inactive", "remission", "resolved"},
        ),
        "verificationStatus": (
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            {
                "unconfirmed",
                "provisional",
                "differential",
                "confirmed",
                "refuted",
                "entered-in-error",
            },
        ),
    },
}

# Required bindings of data types, wherever they occur.
DATATYPE_CODES: dict[str, dict[str, set[str]]] = {
    "Identifier": {"use": {"usual", "official", "temp", "secondary", "old"}},
    "HumanName": {"use": {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}},
    "ContactPoint": {
        "system": {"phone", "fax", "email", "pager", "url", "sms", "other"},
        "use": {"home", "work", "temp", "old", "mobile"},
    },
    "Address": {
        "use": {"home", "work", "temp", "old", "billing"},
        "type": {"postal", "physical", "both"},
    },
    "Quantity": {"comparator": {"<", "<=", ">=", ">"}},
    "Narrative": {"status": {"generated", "extensions", "additional", "empty"}},
}


def raw_values(resource: Any, dotted: str, path: str) -> Iterator[tuple[Any, str]]:
    head, _, rest = dotted.partition(".")
    if not isinstance(resource, dict) or head not in resource:
        return
    value = resource[head]
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    for i, item in items:
        p = f"{path}.{head}" + (f"[{i}]" if i is not None else "")
        if rest:
            yield from raw_values(item, rest, p)
        else:
            yield item, p


def resource_codes(resource: dict[str, Any], rtype: str, base: str) -> list[dict[str, Any]]:
    """The codes and CodeableConcepts of `rtype`'s required bindings, read from the raw JSON."""
    issues: list[dict[str, Any]] = []
    for dotted, allowed in CODES.get(rtype, {}).items():
        for value, p in raw_values(resource, dotted, base):
            if value not in allowed:
                issues.append(
                    issue(
                        p,
                        f"{p}: {value!r} is not one of {', '.join(sorted(allowed))}",
                        "code-invalid",
                    )
                )
    for dotted, (system, allowed) in CONCEPTS.get(rtype, {}).items():
        for value, p in raw_values(resource, dotted, base):
            codings = value.get("coding") or []
            ours = [c for c in codings if c.get("system") == system]
            if not ours:
                issues.append(issue(p, f"{p} needs a coding from {system}", "code-invalid"))
            for c in ours:
                if c.get("code") not in allowed:
                    issues.append(
                        issue(
                            p, f"{p}: {c.get('code')!r} is not a code of {system}", "code-invalid"
                        )
                    )
    return issues


def datatype_codes(obj: BaseModel, kind: str, p: str, issues: list[dict[str, Any]]) -> None:
    """The required bindings of data type `kind` on one model object at `p`."""
    for element, allowed in DATATYPE_CODES.get(kind, {}).items():
        value = getattr(obj, element, None)
        if value is not None and value not in allowed:
            issues.append(
                issue(f"{p}.{element}", f"{p}.{element}: {value!r} is not allowed", "code-invalid")
            )
