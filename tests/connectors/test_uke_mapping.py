"""The UKE mapping, field by field: every receipt of the sample files, of a synthetic city and of
hand-written receipts that use every record the mapping reads (inpatient, public payers,
diagnosis modifiers and free-text names, repeated procedures, 特定器材, comments, 調剤 groups
with and without dispensing) is mapped, and each resource and each field is checked against
the receipt as the layout (docs/uke.md) defines it, written out here independently of the
mapping's tables: which resources, in which order, with which keys in which order, and what
each value must be."""

from __future__ import annotations

import calendar
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from connectors.mapping import uke as mapping
from connectors.mapping.common import Context, Entry
from connectors.sources import uke
from connectors.sources.base import Problem, Record
from phr_core.identifiers import source_record_system
from tests.connectors.helpers import CITY, make_city

SAMPLES = Path(uke.__file__).parents[2] / "samples"
CODE = "C0DE-0000-test"

B = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease"
Z = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterZ-disease-modifier"
S = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterS-medicalProcedure"
Y = "urn:oid:1.2.392.100495.20.2.71"
T = "urn:phr-platform:code:uke-masterT"
C = "urn:phr-platform:code:uke-masterC"
SD = "http://jpfhir.jp/fhir/core/StructureDefinition/"
HL7 = "http://terminology.hl7.org/CodeSystem/"
# JP Core (jp-core-v1x @ cb1f4ee, JP_Organization.fsh): the 10-digit 医療機関コード, the 7-digit
# code in the InsuranceOrganizationNo extension, the 保険者番号; 公費 has no JP Core system.
FACILITY_SYSTEM = "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no"
ORG_NO_EXT = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationNo"
ORG_NO_SYSTEM = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/MedicalOrganizationID"
INSURER_OID = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber"
PAYER_OID = "urn:oid:1.2.392.100495.20.3.71"
# Fields per record in the 記録条件仕様 (shared/reference/uke.md §5; 調剤: docs/uke.md [T]):
# the hand-written records below leave trailing empty fields out; _write adds them back.
FIELDS = {
    "medical": {"IR": 10, "RE": 38, "HO": 15, "KO": 12, "SN": 9, "SY": 8, "SI": 44, "IY": 44,
                "TO": 48, "CO": 5, "GO": 4},
    "pharmacy": {"YK": 9, "RE": 42, "SH": 6, "CZ": 71, "IY": 10, "GO": 4},
}  # fmt: skip
# 転帰区分 (別表): code → name, and the clinical status it means
OUTCOMES = {
    "1": ("継続", "active"),
    "2": ("治ゆ", "resolved"),
    "3": ("死亡", "inactive"),
    "4": ("中止（転医）", "inactive"),
}


def _rec(*cells: str, days: tuple[int, ...] = (), first: int = 0) -> str:
    out = list(cells)
    if first:
        out += [""] * (first - 1 - len(out))
        out += [("1" if d in days else "") for d in range(1, 32)]
    return ",".join(out)


MEDICAL = [
    _rec("IR", "2", "07", "1", "1234567", "", "テスト病院", "202503", "00", ""),
    # an inpatient receipt (種別 1111: 4th digit odd) of February: every record the mapping reads
    _rec("RE", "1", "1111", "202502", "テスト 太郎", "1", "19600101", "70", "20250203"),
    _rec("HO", "06070010", "12", "3456", "20", "8000", "", "", "", "", "", "24000"),
    _rec("KO", "81070285", "", "", "20", "8000", "0"),
    _rec("KO", "12070010", "", "", "20", "7000", "0"),
    _rec("SN", "1", "01", "06070010", "12", "3456", "00"),
    _rec("SY", "0000999", "20250203", "2", "80018002", "テスト病名", "01"),
    _rec("SY", "4660003", "20250110", "4"),
    _rec("SI", "90", "1", "190117710", "", "1500", "10", days=(3, 4), first=14),
    _rec("SI", "90", "1", "190117710", "", "1500", "2", days=(31,), first=14),  # no Feb 31
    _rec("SI", "", "1", "160008010", "", "", ""),  # no section, points, times or days
    _rec("IY", "21", "1", "620000023", "3.5", "12", "14", days=(5,), first=14),
    _rec("IY", "21", "1", "620000023", "", "", "", days=(), first=14),
    _rec("TO", "40", "1", "700590000", "", "30", "2", days=(6,), first=18),
    _rec("TO", "", "1", "700590001", "", "", ""),
    _rec("CO", "90", "1", "810000001", "free text is never read"),
    _rec("CO", "", "1", "820000002"),
    # an outpatient receipt with a single diagnosis, no lines and no total
    _rec("RE", "2", "1112", "202502", "テスト 花子", "2", "19700202", "70"),
    _rec("HO", "06070010", "12", "3457", "1", ""),
    _rec("SY", "4659007", "20250101", "3"),
    _rec("GO", "2", "8000", "99"),
]
PHARMACY = [
    _rec("YK", "2", "07", "4", "7654321", "テスト薬局", "202503", "00", ""),
    _rec(
        "RE", "1", "4112", "202502", "テスト 太郎", "1", "19600101", "70", "", "07", "1", "1234567"
    ),
    _rec("HO", "06070010", "12", "3456", "2", "300", "", "", "", "0"),
    _rec("KO", "81070285", "", "", "2", "300", "0"),
    _rec("SH", "01", "1", "", "", "10"),
    _rec("CZ", "1", "20250210", "20250210", "1", "7", "1", "1", "01", "420000110", "24"),
    _rec("CZ", "1", "20250220", "20250221", "2", "14", "1", "1", "01", "", ""),
    _rec("IY", "1", "620000023", "6"),
    _rec("IY", "1", "620000024", ""),
    _rec("SH", "02", "1", "", "", "10"),  # a group without dispensing
    _rec("IY", "1", "620000025", "1"),
    _rec("TO", "1", "700590000", "1"),
    _rec("CO", "830000003", "free text"),
    _rec("GO", "1", "300", "99"),
]


def _write(path: Path, lines: list[str]) -> Path:
    counts = FIELDS["pharmacy" if lines[0].startswith("YK") else "medical"]
    padded = []
    for x in lines:
        n = counts.get(x.split(",")[0], 0)
        padded.append(x + "," * max(0, n - 1 - x.count(",")))
    path.write_bytes("".join(x + "\r\n" for x in padded).encode("cp932") + b"\x1a")
    return path


def _records(path: Path) -> list[Record]:
    items = list(uke.read(path))
    assert not [i for i in items if isinstance(i, Problem)], items
    return [i for i in items if isinstance(i, Record)]


def _first_day(days: list[int], ym: tuple[int, int]) -> str:
    """算定日: the first day it was done, or the 1st when none (or no such day) is given."""
    try:
        return date(*ym, days[0] if days else 1).isoformat()
    except ValueError:
        return date(*ym, 1).isoformat()


def _lines(d: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, list[int], Any]]:
    """The claim's lines in item order: SI, then IY (医科 lines, then per 調剤 group one per IY
    and CZ: handed over on the CZ's day), then TO."""
    out = [("SI", si, si["times"], si["days"], None) for si in d["si"]]
    out += [("IY", iy, iy.get("times", 1), iy.get("days", []), None) for iy in d["iy"]]
    for g in d.get("rx", []):
        for cz in g["cz"] or [None]:
            for iy in g["iy"]:
                days = [cz["dispensed"].day] if cz else iy.get("days", [])
                out.append(("IY", iy, iy.get("times", 1), days, cz))
    out += [("TO", to, to["times"], to["days"], None) for to in d["to"]]
    return out


def _ref(e: Entry) -> dict[str, str]:
    return {"reference": e.full_url}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code} | ({"display": display} if display else {})


def check_receipt(rec: Record, entries: list[Entry]) -> dict[str, Any]:
    """Every resource of one receipt, every field. Returns the EOB."""
    d, h, r, ho = rec.data, rec.data["header"], rec.data["re"], rec.data["ho"]
    pharmacy = h["kind"] == "pharmacy"
    system = source_record_system(CITY, "uke")
    y, m = r["ym"]
    end = date(y, m, calendar.monthrange(y, m)[1]).isoformat()
    todo = list(entries)
    patient, facility = todo.pop(0), todo.pop(0)
    assert patient.resource_type == "Patient" and patient.value == CODE
    me = _ref(patient)

    want_facility = {
        "resourceType": "Organization",
        "meta": {"profile": [SD + "JP_Organization"]},
        "extension": [
            {
                "url": ORG_NO_EXT,
                "valueIdentifier": {"system": ORG_NO_SYSTEM, "value": h["facility"]},
            }
        ],
        "identifier": [
            {"system": system, "value": f"org:{h['facility10']}"},
            {"system": FACILITY_SYSTEM, "value": h["facility10"]},
        ],
        "active": True,
        **({"name": h["facility_name"]} if h["facility_name"] else {}),
        "type": [
            {
                "coding": [
                    _coding(
                        "urn:phr-platform:code:organization-type",
                        "pharmacy" if pharmacy else "medical",
                        "保険薬局" if pharmacy else "保険医療機関",
                    )
                ]
            }
        ],
    }
    assert list(facility.resource.items()) == list(want_facility.items())

    # who pays: the insurer (HO) and each public payer (KO), each with the person's Coverage
    payers = [("insurer", ho["insurer"], INSURER_OID)]
    payers += [("public-payer", ko["payer"], PAYER_OID) for ko in d["ko"]]
    insurance = []
    for i, (prefix, number, oid) in enumerate(payers):
        org, cov = todo.pop(0), todo.pop(0)
        want_org: dict[str, Any] = {"resourceType": "Organization"}
        if i == 0:
            want_org["meta"] = {"profile": [SD + "JP_Organization"]}
        want_org["identifier"] = [
            {"system": system, "value": f"{prefix}:{number}"},
            {"system": oid, "value": number},
        ]
        want_org["active"] = True
        if i == 0:
            want_org["type"] = [
                {"coding": [_coding(HL7 + "organization-type", "ins", "Insurance Company")]}
            ]
        assert (org.resource_type, org.value) == ("Organization", f"{prefix}:{number}")
        assert list(org.resource.items()) == list(want_org.items())
        value = f"coverage:{number}:{CODE}"
        want_cov: dict[str, Any] = {
            "resourceType": "Coverage",
            "meta": {"profile": [SD + "JP_Coverage"]},
            "identifier": [{"system": system, "value": value}],
            "status": "active",
            "beneficiary": me,
            "payor": [_ref(org)],
        }
        if i:
            want_cov["order"] = i + 1
        assert (cov.resource_type, cov.value) == ("Coverage", value)
        assert list(cov.resource.items()) == list(want_cov.items())
        insurance.append({"focal": i == 0, "coverage": _ref(cov)})
        if i == 0:
            insurer = org

    key = entries[-1].value
    assert re.fullmatch("claim:[0-9a-f]{32}", key)

    diagnosis = []
    for i, sy in enumerate(d["sy"]):
        cond = todo.pop(0)
        value = f"{key}:SY:{sy['code']}:{''.join(sy['modifiers'])}"
        name, status = OUTCOMES[sy["outcome"]]
        ext = [
            {
                "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/"
                "JP_Condition_DiseaseOutcome",
                "valueCodeableConcept": {
                    "coding": [
                        _coding(
                            "http://jpfhir.jp/fhir/core/CodeSystem/"
                            "JP_ConditionDiseaseOutcomeReceipt_CS",
                            sy["outcome"],
                            name,
                        )
                    ]
                },
            }
        ]
        if sy["modifiers"]:
            ext.append(
                {
                    "url": "urn:phr-platform:code:uke-modifier",
                    "valueCodeableConcept": {"coding": [_coding(Z, z) for z in sy["modifiers"]]},
                }
            )
        code: dict[str, Any] = {"coding": [_coding(B, sy["code"])]}
        if sy["name"]:
            code["text"] = sy["name"]
        want = {
            "resourceType": "Condition",
            "meta": {"profile": [SD + "JP_Condition"]},
            "identifier": [{"system": system, "value": value}],
            "clinicalStatus": {"coding": [_coding(HL7 + "condition-clinical", status)]},
            "category": [{"coding": [_coding(HL7 + "condition-category", "encounter-diagnosis")]}],
            "code": code,
            "subject": me,
            "onsetDateTime": sy["start"].isoformat(),
            "recordedDate": end,
            "extension": ext,
        }
        assert (cond.resource_type, cond.value) == ("Condition", value)
        assert list(cond.resource.items()) == list(want.items())
        dg: dict[str, Any] = {"sequence": i + 1, "diagnosisReference": _ref(cond)}
        if sy["primary"]:
            dg["type"] = [{"coding": [_coding(HL7 + "ex-diagnosistype", "principal")]}]
        diagnosis.append(dg)

    procedures: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    nth: dict[tuple[str, str], int] = {}
    for rt, row, times, days, cz in _lines(d):
        system_of = {"SI": S, "IY": Y, "TO": T}[rt]
        if rt in ("SI", "IY"):
            nth[rt, row["code"]] = nth.get((rt, row["code"]), 0) + 1
            value = f"{key}:{rt}:{row['code']}:{nth[rt, row['code']]}"
            e = todo.pop(0)
            res: dict[str, Any]
            if rt == "SI":
                res = {
                    "resourceType": "Procedure",
                    "identifier": [{"system": system, "value": value}],
                    "status": "completed",
                    "code": {"coding": [_coding(S, row["code"])]},
                    "subject": me,
                    "performedDateTime": _first_day(row["days"], r["ym"]),
                    "performer": [{"actor": _ref(facility)}],
                }
                procedures.append({"sequence": len(procedures) + 1, "procedureReference": _ref(e)})
            else:
                res = {
                    "resourceType": "MedicationDispense",
                    "identifier": [{"system": system, "value": value}],
                    "status": "completed",
                    "medicationCodeableConcept": {"coding": [_coding(Y, row["code"])]},
                    "subject": me,
                    "performer": [{"actor": _ref(facility)}],
                    "whenHandedOver": cz["dispensed"].isoformat()
                    if cz
                    else _first_day(row.get("days", []), r["ym"]),
                }
                if row["amount"] is not None:
                    res["quantity"] = {"value": row["amount"]}
                if cz and cz["days_supply"]:
                    res["daysSupply"] = {
                        "value": cz["days_supply"],
                        "unit": "日",
                        "system": "http://unitsofmeasure.org",
                        "code": "d",
                    }
            assert (e.resource_type, e.value) == (res["resourceType"], value)
            assert list(e.resource.items()) == list(res.items())
        item: dict[str, Any] = {
            "sequence": len(items) + 1,
            "productOrService": {"coding": [_coding(system_of, row["code"])]},
            "servicedDate": _first_day(days, r["ym"]),
            "quantity": {"value": times},
        }
        if row.get("section"):
            item["category"] = {
                "coding": [_coding("urn:phr-platform:code:uke-section", row["section"])]
            }
        if row.get("points") is not None:
            item["net"] = {"value": row["points"] * 10, "currency": "JPY"}
        items.append(item)

    eob = todo.pop(0)
    assert todo == [] and eob is entries[-1]
    inpatient = not pharmacy and int(r["type"][3]) % 2 == 1
    claim_type = "pharmacy" if pharmacy else "institutional" if inpatient else "professional"
    want = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": [{"system": system, "value": key}],
        "status": "active",
        "type": {"coding": [_coding(HL7 + "claim-type", claim_type)]},
        "subType": {"coding": [_coding("urn:phr-platform:code:uke-receipt-type", r["type"])]},
        "use": "claim",
        "patient": me,
        "billablePeriod": {"start": date(y, m, 1).isoformat(), "end": end},
        "created": date(h["billing"][0], h["billing"][1], 1).isoformat(),
        "insurer": _ref(insurer),
        "provider": _ref(facility),
        "outcome": "complete",
        "insurance": insurance,
    }
    if diagnosis:
        want["diagnosis"] = diagnosis
    if procedures:
        want["procedure"] = procedures
    if items:
        want["item"] = items
    if d["co"]:
        want["supportingInfo"] = [
            {
                "sequence": i + 1,
                "category": {"coding": [_coding(HL7 + "claiminformationcategory", "info")]},
                "code": {"coding": [_coding(C, co["code"])]},
            }
            for i, co in enumerate(d["co"])
        ]
    if ho["points"] is not None:
        want["total"] = [
            {
                "category": {"coding": [_coding(HL7 + "adjudication", "submitted")]},
                "amount": {"value": ho["points"] * 10, "currency": "JPY"},
            }
        ]
    assert eob.resource_type == "ExplanationOfBenefit"
    assert list(eob.resource.items()) == list(want.items())
    return eob.resource


def _map(rec: Record) -> list[Entry]:
    return mapping.map_record(Context(CITY), rec, CODE)


def test_hand_written_receipts_use_every_record_and_map_field_by_field(tmp_path: Path) -> None:
    medical = _records(_write(tmp_path / "RECEIPTC.UKE", MEDICAL))
    pharmacy = _records(_write(tmp_path / "RECEIPTY.UKE", PHARMACY))
    assert len(medical) == 2 and len(pharmacy) == 1
    eobs = []
    for rec in medical + pharmacy:
        entries = _map(rec)
        eobs.append(check_receipt(rec, entries))
        for e in entries:
            get_fhir_model_class(e.resource_type).model_validate(e.resource)
    inpatient, outpatient, rx = eobs
    # what the hand-written receipts were written to show
    assert inpatient["type"]["coding"][0]["code"] == "institutional"
    assert outpatient["type"]["coding"][0]["code"] == "professional"
    assert rx["type"]["coding"][0]["code"] == "pharmacy"
    assert [i["focal"] for i in inpatient["insurance"]] == [True, False, False]
    assert [i["servicedDate"] for i in inpatient["item"][:3]] == [
        "2025-02-03",
        "2025-02-01",  # 31 February is no day: the 1st
        "2025-02-01",
    ]
    assert len(inpatient["procedure"]) == 3 and len(inpatient["item"]) == 3 + 2 + 2
    assert "item" not in outpatient and "total" not in outpatient
    assert len(rx["item"]) == 2 * 2 + 1 + 1  # 2 IY × 2 CZ, 1 IY without CZ, 1 TO
    values = [e.value for e in _map(medical[0]) if e.resource_type == "Procedure"]
    assert [v.rsplit(":", 2)[1:] for v in values] == [
        ["190117710", "1"],
        ["190117710", "2"],
        ["160008010", "1"],
    ]


def test_sample_files_map_field_by_field() -> None:
    n = 0
    for path in sorted(SAMPLES.glob("*.UKE")):
        for rec in _records(path):
            check_receipt(rec, _map(rec))
            n += 1
    assert n > 5


@pytest.fixture(scope="module")
def city_claims(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    files = make_city(tmp_path_factory.mktemp("uke-city"), n=400, months=2)
    return list(files["claims"])


def test_a_synthetic_citys_claims_map_field_by_field(city_claims: list[Path]) -> None:
    kinds: set[str] = set()
    for path in city_claims:
        for rec in _records(path):
            eob = check_receipt(rec, _map(rec))
            kinds.add(eob["type"]["coding"][0]["code"])
    assert kinds >= {"pharmacy", "professional"}


def test_mapping_the_same_receipt_twice_gives_the_same_resources(tmp_path: Path) -> None:
    """Line keys count repeats within a receipt, never across receipts or runs."""
    rec = _records(_write(tmp_path / "RECEIPTC.UKE", MEDICAL))[0]
    first = [(e.full_url, e.resource) for e in _map(rec)]
    assert [(e.full_url, e.resource) for e in _map(rec)] == first
