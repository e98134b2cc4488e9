"""Provenance of what a connector loaded: which batch wrote what, for whom, from which city.

A record keeps its origin wherever it is read (a family that moved; issue 8): each Provenance
names the connector (assembler, on behalf of its city) and the source city (custodian)."""

from __future__ import annotations

from typing import Any

from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM
from phr_server.dates import instant
from phr_server.repository import new_id

CLIENT_SYSTEM = "urn:phr-platform:oauth-client"

PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def provenances(
    touched: list[str], comp: dict[str, set[str]], muni: str, client_id: str, now: Any
) -> list[dict[str, Any]]:
    """The Provenance of one batch: one per Patient compartment it changed (targets: that
    Patient and its versions written, so `$everything` returns it and it names nobody else's
    records), and one for what belongs to no Patient (an Organization). Each names the
    connector (assembler, on behalf of its city) and the source city (custodian), so a record
    keeps its origin wherever it is read (a family that moved; issue 8)."""
    groups: dict[str | None, list[str]] = {}
    for ref in touched:
        owners: list[str | None] = [*sorted(comp.get("/".join(ref.split("/")[:2]), ()))]
        for pid in owners or [None]:
            groups.setdefault(pid, []).append(ref)
    out = []
    for pid, refs in groups.items():
        if pid is not None and not any(r.startswith(f"Patient/{pid}/") for r in refs):
            refs = [f"Patient/{pid}", *refs]  # in the Patient's compartment (Provenance.patient)
        out.append(
            {
                "resourceType": "Provenance",
                "id": new_id(),
                "target": [{"reference": r} for r in refs],
                "recorded": instant(now),
                "activity": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                            "code": "UPDATE",
                        }
                    ]
                },
                "agent": provenance_agents(client_id, muni),
            }
        )
    return out


def provenance_agents(client_id: str, municipality: str) -> list[dict[str, Any]]:
    """Who a load came from: the connector (assembler, on behalf of its city) and the source
    city (custodian), the city named by its 全国地方公共団体コード."""
    return [
        {
            "type": {"coding": [{"system": PARTICIPANT, "code": "assembler"}]},
            "who": {"type": "Device", "identifier": {"system": CLIENT_SYSTEM, "value": client_id}},
            "onBehalfOf": _city(municipality),
        },
        {
            "type": {"coding": [{"system": PARTICIPANT, "code": "custodian"}]},
            "who": _city(municipality),
        },
    ]


def _city(municipality: str) -> dict[str, Any]:
    """A Reference to the city as an Organization, by its 全国地方公共団体コード."""
    return {
        "type": "Organization",
        "identifier": {"system": MUNICIPALITY_CODE_SYSTEM, "value": municipality},
    }
