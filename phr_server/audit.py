"""AuditEvents: one per request that carried a valid token (read, vread, history, search,
`$everything`, transaction), written by the server itself into the same encrypted store, in
the compartments of the Patients whose data was touched, so a person (and a guardian) can
search who read what. The API accepts no AuditEvent writes: they are the server's record."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy.orm import Session

from phr_server.dates import instant
from phr_server.models import utcnow
from phr_server.policy import Access
from phr_server.repository import Repository, new_id
from phr_server.storage import PLATFORM_SCOPE

CLIENT_SYSTEM = "urn:phr-platform:oauth-client"
SUBJECT_SYSTEM = "urn:phr-platform:phr-subject"
MAX_ENTITIES = 200

ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "search-type": "E",
    "operation": "E",
    "transaction": "E",
    "update": "U",
}


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
        }
    ]
    if not access.system:
        agents.append(
            {
                "who": {"identifier": {"system": SUBJECT_SYSTEM, "value": access.token.subject}},
                "requestor": True,
            }
        )
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
        "id": new_id(),
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


def record(s: Session, repo: Repository, event: dict[str, Any]) -> None:
    repo.put(s, event, PLATFORM_SCOPE, None)
