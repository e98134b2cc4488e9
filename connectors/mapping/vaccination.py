"""Vaccination register rows → Immunization (JP_Immunization)."""

from __future__ import annotations

from typing import Any

from connectors.mapping.common import JP_SD, LOCAL, Context, Entry, coding, ident, iso, ref
from connectors.sources.base import Record
from connectors.sources.vaccination_csv import VACCINES

SOURCE = "vaccination"


def map_record(ctx: Context, rec: Record, code: str) -> list[Entry]:
    d = rec.data
    system = ctx.record_system(SOURCE)
    patient = ctx.patient(code)
    entries = [patient]
    display, diseases = VACCINES[d["vaccine"]]
    res: dict[str, Any] = {
        "resourceType": "Immunization",
        "meta": {"profile": [JP_SD + "JP_Immunization"]},
        "identifier": ident(system, rec.key),
        "status": "completed",
        "vaccineCode": {
            "coding": [coding(LOCAL + "vaccine", d["vaccine"], display)],
            "text": display,
        },
        "patient": ctx.patient_ref(code),
        "occurrenceDateTime": iso(d["date"]),
        "primarySource": False,
        "reportOrigin": {
            "coding": [coding(LOCAL + "report-origin", "municipal-register", "予防接種台帳")]
        },
        "protocolApplied": [
            {
                "series": d["series"] if d["series"] != "-" else display,
                "doseNumberPositiveInt": d["dose"],
                "targetDisease": [{"text": t} for t in diseases],
            }
        ],
    }
    if d.get("lot"):
        res["lotNumber"] = d["lot"]
    if d.get("manufacturer"):
        res["manufacturer"] = {"display": d["manufacturer"]}
    if d.get("facility"):
        org = ctx.organization(SOURCE, d["facility"])
        entries.append(org)
        res["performer"] = [{"actor": ref(org)}]
    entries.append(Entry("Immunization", system, rec.key, res))
    return entries
