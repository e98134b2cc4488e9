"""UKE receipts → ExplanationOfBenefit (the adjudicated claim; no JP Core profile exists),
Coverage, Organization (facility and insurer), Condition (masterB 傷病名 + masterZ 修飾語),
Procedure (masterS 診療行為), MedicationDispense (レセ電 医薬品コード). Original codes are kept
under their code systems (fhir.md §3). Insurance card symbols and numbers are never carried."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from connectors.mapping.common import (
    INSURER_OID,
    JP_EXT,
    JP_SD,
    LOCAL,
    PUBLIC_PAYER_OID,
    Context,
    Entry,
    coding,
    ident,
    iso,
    ref,
)
from connectors.sources.base import Record
from connectors.sources.uke import month_end

SOURCE = "uke"
MASTER_B = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease"
MASTER_Z = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterZ-disease-modifier"
MASTER_S = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterS-medicalProcedure"
MASTER_Y = "urn:oid:1.2.392.100495.20.2.71"  # レセ電 医薬品コード
MASTER_T = LOCAL + "uke-masterT"  # 特定器材: no published FHIR URI found
MASTER_C = LOCAL + "uke-masterC"  # コメント
OUTCOME_CS = "http://jpfhir.jp/fhir/core/CodeSystem/JP_ConditionDiseaseOutcomeReceipt_CS"
OUTCOME_EXT = JP_EXT + "JP_Condition_DiseaseOutcome"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
DIAG_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
OUTCOME = {
    "1": ("継続", "active"),
    "2": ("治ゆ", "resolved"),
    "3": ("死亡", "inactive"),
    "4": ("中止（転医）", "inactive"),
}


def _key(rec: Record, code: str) -> str:
    """The receipt's stable key: facility, 診療年月, receipt type and the person. One receipt per
    person, facility, month and type, so a corrected re-export maps onto the same resources.
    Hashed, so the identifier value does not spell out who was where."""
    raw = f"{rec.key}:{code}".encode()
    return "claim:" + hashlib.sha256(raw).hexdigest()[:32]


def _first_day(days: list[int], ym: tuple[int, int]) -> str:
    y, m = ym
    d = days[0] if days else 1
    try:
        return iso(date(y, m, d))
    except ValueError:
        return iso(date(y, m, 1))


def map_record(ctx: Context, rec: Record, code: str) -> list[Entry]:
    d = rec.data
    h, re, ho = d["header"], d["re"], d["ho"]
    system = ctx.record_system(SOURCE)
    key = _key(rec, code)
    patient = ctx.patient(code)
    pref = ctx.patient_ref(code)
    pharmacy = h["kind"] == "pharmacy"
    entries: list[Entry] = [patient]

    facility = ctx.organization(SOURCE, h["facility10"], h["facility_name"] or None)
    facility.resource["type"] = [
        {
            "coding": [
                coding(
                    LOCAL + "organization-type",
                    "pharmacy" if pharmacy else "medical",
                    "保険薬局" if pharmacy else "保険医療機関",
                )
            ]
        }
    ]
    entries.append(facility)
    insurer_value = f"insurer:{ho['insurer']}"
    insurer = Entry(
        "Organization",
        system,
        insurer_value,
        {
            "resourceType": "Organization",
            "meta": {"profile": [JP_SD + "JP_Organization"]},
            "identifier": [
                {"system": system, "value": insurer_value},
                {"system": INSURER_OID, "value": ho["insurer"]},
            ],
            "active": True,
            "type": [
                {
                    "coding": [
                        coding(
                            "http://terminology.hl7.org/CodeSystem/organization-type",
                            "ins",
                            "Insurance Company",
                        )
                    ]
                }
            ],
        },
    )
    entries.append(insurer)

    cov_value = f"coverage:{ho['insurer']}:{code}"
    coverage = Entry(
        "Coverage",
        system,
        cov_value,
        {
            "resourceType": "Coverage",
            "meta": {"profile": [JP_SD + "JP_Coverage"]},
            "identifier": ident(system, cov_value),
            "status": "active",
            "beneficiary": pref,
            "payor": [ref(insurer)],
        },
    )
    entries.append(coverage)
    insurance = [{"focal": True, "coverage": ref(coverage)}]
    for i, ko in enumerate(d["ko"]):
        payer_value = f"public-payer:{ko['payer']}"
        payer = Entry(
            "Organization",
            system,
            payer_value,
            {
                "resourceType": "Organization",
                "identifier": [
                    {"system": system, "value": payer_value},
                    {"system": PUBLIC_PAYER_OID, "value": ko["payer"]},
                ],
                "active": True,
            },
        )
        kov = f"coverage:{ko['payer']}:{code}"
        kocov = Entry(
            "Coverage",
            system,
            kov,
            {
                "resourceType": "Coverage",
                "meta": {"profile": [JP_SD + "JP_Coverage"]},
                "identifier": ident(system, kov),
                "status": "active",
                "beneficiary": pref,
                "payor": [ref(payer)],
                "order": i + 2,
            },
        )
        entries += [payer, kocov]
        insurance.append({"focal": False, "coverage": ref(kocov)})

    y, m = re["ym"]
    period = {"start": iso(date(y, m, 1)), "end": iso(month_end(y, m))}
    by, bm = h["billing"]
    inpatient = int(re["type"][3]) % 2 == 1 and not pharmacy

    diagnosis = []
    for i, sy in enumerate(d["sy"]):
        ckey = f"{key}:SY:{sy['code']}:{''.join(sy['modifiers'])}"
        label, clinical = OUTCOME[sy["outcome"]]
        cc: dict[str, Any] = {"coding": [coding(MASTER_B, sy["code"])]}
        if sy.get("name"):
            cc["text"] = sy["name"]
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "meta": {"profile": [JP_SD + "JP_Condition"]},
            "identifier": ident(system, ckey),
            "clinicalStatus": {"coding": [coding(CLINICAL, clinical)]},
            "category": [
                {
                    "coding": [
                        coding(
                            "http://terminology.hl7.org/CodeSystem/condition-category",
                            "encounter-diagnosis",
                        )
                    ]
                }
            ],
            "code": cc,
            "subject": pref,
            "onsetDateTime": iso(sy["start"]),
            "recordedDate": period["end"],
            "extension": [
                {
                    "url": OUTCOME_EXT,
                    "valueCodeableConcept": {"coding": [coding(OUTCOME_CS, sy["outcome"], label)]},
                }
            ],
        }
        if sy["modifiers"]:
            res["extension"].append(
                {
                    "url": LOCAL + "uke-modifier",
                    "valueCodeableConcept": {
                        "coding": [coding(MASTER_Z, z) for z in sy["modifiers"]]
                    },
                }
            )
        cond = Entry("Condition", system, ckey, res)
        entries.append(cond)
        dg: dict[str, Any] = {"sequence": i + 1, "diagnosisReference": ref(cond)}
        if sy["primary"]:
            dg["type"] = [{"coding": [coding(DIAG_TYPE, "principal")]}]
        diagnosis.append(dg)

    procedures = []
    items = []
    seen: dict[str, int] = {}

    def nth(kind: str, c: str) -> int:
        seen[f"{kind}{c}"] = seen.get(f"{kind}{c}", 0) + 1
        return seen[f"{kind}{c}"]

    for si in d["si"]:
        pkey = f"{key}:SI:{si['code']}:{nth('SI', si['code'])}"
        proc = Entry(
            "Procedure",
            system,
            pkey,
            {
                "resourceType": "Procedure",
                "identifier": ident(system, pkey),
                "status": "completed",
                "code": {"coding": [coding(MASTER_S, si["code"])]},
                "subject": pref,
                "performedDateTime": _first_day(si["days"], re["ym"]),
                "performer": [{"actor": ref(facility)}],
            },
        )
        entries.append(proc)
        procedures.append({"sequence": len(procedures) + 1, "procedureReference": ref(proc)})
        items.append(
            _item(
                len(items) + 1,
                MASTER_S,
                si["code"],
                si.get("points"),
                si["times"],
                si["days"],
                re["ym"],
                si.get("section"),
            )
        )

    # 医科: one MedicationDispense per IY line. 調剤: per prescription group (SH), one per IY
    # and dispensing (CZ): handed over on the CZ's 調剤年月日, for its 調剤数量 days.
    dispenses: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(iy, None) for iy in d["iy"]]
    for group in d.get("rx", []):
        for cz in group["cz"] or [None]:
            dispenses += [(iy, cz) for iy in group["iy"]]
    for iy, cz in dispenses:
        mkey = f"{key}:IY:{iy['code']}:{nth('IY', iy['code'])}"
        handed = iso(cz["dispensed"]) if cz else _first_day(iy.get("days", []), re["ym"])
        # No JP_MedicationDispense: it requires the Rp number, the order in the Rp and the
        # quantity's unit code, which a receipt does not carry (phr_server/profiles.py).
        md: dict[str, Any] = {
            "resourceType": "MedicationDispense",
            "identifier": ident(system, mkey),
            "status": "completed",
            "medicationCodeableConcept": {"coding": [coding(MASTER_Y, iy["code"])]},
            "subject": pref,
            "performer": [{"actor": ref(facility)}],
            "whenHandedOver": handed,
        }
        if iy.get("amount") is not None:
            md["quantity"] = {"value": iy["amount"]}
        if cz and cz.get("days_supply"):
            md["daysSupply"] = {
                "value": cz["days_supply"],
                "unit": "日",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
        entries.append(Entry("MedicationDispense", system, mkey, md))
        days = [cz["dispensed"].day] if cz else iy.get("days", [])
        items.append(
            _item(
                len(items) + 1,
                MASTER_Y,
                iy["code"],
                iy.get("points"),
                iy.get("times", 1),
                days,
                re["ym"],
                iy.get("section"),
            )
        )
    for to in d["to"]:
        items.append(
            _item(
                len(items) + 1,
                MASTER_T,
                to["code"],
                to.get("points"),
                to["times"],
                to["days"],
                re["ym"],
                to.get("section"),
            )
        )

    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": ident(system, key),
        "status": "active",
        "type": {
            "coding": [
                coding(
                    CLAIM_TYPE,
                    "pharmacy" if pharmacy else ("institutional" if inpatient else "professional"),
                )
            ]
        },
        "subType": {"coding": [coding(LOCAL + "uke-receipt-type", re["type"])]},
        "use": "claim",
        "patient": pref,
        "billablePeriod": period,
        "created": iso(date(by, bm, 1)),
        "insurer": ref(insurer),
        "provider": ref(facility),
        "outcome": "complete",
        "insurance": insurance,
    }
    if diagnosis:
        eob["diagnosis"] = diagnosis
    if procedures:
        eob["procedure"] = procedures
    if items:
        eob["item"] = items
    if d["co"]:
        eob["supportingInfo"] = [
            {
                "sequence": i + 1,
                "category": {
                    "coding": [
                        coding(
                            "http://terminology.hl7.org/CodeSystem/claiminformationcategory", "info"
                        )
                    ]
                },
                "code": {"coding": [coding(MASTER_C, co["code"])]},
            }
            for i, co in enumerate(d["co"])
        ]
    if ho.get("points") is not None:
        eob["total"] = [
            {
                "category": {
                    "coding": [
                        coding("http://terminology.hl7.org/CodeSystem/adjudication", "submitted")
                    ]
                },
                "amount": {"value": ho["points"] * 10, "currency": "JPY"},
            }
        ]
    entries.append(Entry("ExplanationOfBenefit", system, key, eob))
    return entries


def _item(
    seq: int,
    system: str,
    code: str,
    points: int | None,
    times: int,
    days: list[int],
    ym: tuple[int, int],
    section: str | None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sequence": seq,
        "productOrService": {"coding": [coding(system, code)]},
        "servicedDate": _first_day(days, ym),
        "quantity": {"value": times},
    }
    if section:
        item["category"] = {"coding": [coding(LOCAL + "uke-section", section)]}
    if points is not None:
        item["net"] = {"value": points * 10, "currency": "JPY"}
    return item
