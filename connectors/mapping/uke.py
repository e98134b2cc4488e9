"""UKE receipts → ExplanationOfBenefit (the adjudicated claim; no JP Core profile exists),
Coverage, Organization (facility and insurer), Condition (masterB 傷病名 + masterZ 修飾語),
Procedure (masterS 診療行為), MedicationDispense (レセ電 医薬品コード). Original codes are kept
under their code systems (fhir.md §3). Insurance card symbols and numbers are never carried.

The mapping is driven by tables: who pays (`PAYERS`: HO and KO records), what each kind of
facility is (`FACILITY_TYPES`), and which records are lines of the claim (`LINES`: SI, IY, TO,
each with its code system and the clinical resource it also becomes). One small function
builds each resource; `map_record` puts them together in the order the Bundle carries them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connectors.mapping.common import (
    INSURER_SYSTEM,
    JP_EXT,
    JP_SD,
    LOCAL,
    PUBLIC_PAYER_OID,
    Context,
    Entry,
    MappingError,
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
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
UCUM = "http://unitsofmeasure.org"

# SY 転帰区分 → (its name, FHIR clinical status)
OUTCOME = {
    "1": ("継続", "active"),
    "2": ("治ゆ", "resolved"),
    "3": ("死亡", "inactive"),
    "4": ("中止（転医）", "inactive"),
}

# The header's kind (IR 医科, YK 調剤) → the facility's organization type (code, display).
FACILITY_TYPES = {
    "medical": ("medical", "保険医療機関"),
    "pharmacy": ("pharmacy", "保険薬局"),
}


@dataclass(frozen=True)
class Payer:
    """A record type naming who pays: the payer's Organization and the person's Coverage."""

    number: str  # the field holding the payer's number
    prefix: str  # of the Organization's identifier value
    system: str  # the national system of the payer's number
    insurer: bool  # the insurer (JP Core profile, type "ins") rather than a public payer


PAYERS = {
    "HO": Payer("insurer", "insurer", INSURER_SYSTEM, insurer=True),  # 保険者番号
    "KO": Payer("payer", "public-payer", PUBLIC_PAYER_OID, insurer=False),  # 公費負担者番号
}


@dataclass(frozen=True)
class Line:
    """One line of the claim as its record gives it: the parsed record, how many times, on
    which days of the month, and (調剤) the CZ dispensing it was handed over in."""

    row: dict[str, Any]
    times: int
    days: list[int]
    cz: dict[str, Any] | None = None


@dataclass
class Claim:
    """What every resource of one receipt shares."""

    rec: Record
    code: str  # the person's pseudonymous code
    system: str  # the record identifier system
    key: str  # the receipt's identifier value (`claim_key`)
    patient: dict[str, str]  # the reference to the person's Patient
    facility: Entry
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return self.rec.data

    @property
    def ym(self) -> tuple[int, int]:
        return self.data["re"]["ym"]

    @property
    def pharmacy(self) -> bool:
        return self.data["header"]["kind"] == "pharmacy"

    def line_key(self, record: str, code: str) -> str:
        """A line's identifier value: the same code twice in one receipt is the 1st and 2nd."""
        n = self.seen[f"{record}{code}"] = self.seen.get(f"{record}{code}", 0) + 1
        return f"{self.key}:{record}:{code}:{n}"


@dataclass(frozen=True)
class LineKind:
    """A record type whose records are lines of the claim (EOB.item, in this table's order)."""

    record: str
    system: str  # the code system of its codes
    lines: Callable[[dict[str, Any]], Iterator[Line]]  # its lines in the receipt's data
    # The clinical resource each line also is, and the EOB list that references it (if any).
    resource: Callable[[Claim, Line], Entry] | None = None
    eob_list: str | None = None


def claim_key(ctx: Context, rec: Record, code: str) -> str:
    """The receipt's identifier value. What makes a receipt unique is its facility, 診療年月,
    receipt type, person, insurer (HO 保険者番号) and its own number in the file (RE レセプト
    番号); the first four alone (the key of versions before issue 18) let a second receipt of
    the same month, e.g. after a change of insurer, replace the first without a word.

    So that claims loaded by earlier versions are neither duplicated nor lost, the first
    receipt of a file with a given (facility, 診療年月, type, person) keeps the identifier it
    always had (a hash of those four); every further receipt sharing them gets a hash of all
    six. File order decides, so a re-run of the same file gives the same identifiers. Two
    receipts equal in all six are a broken file: the second is rejected (MappingError), never
    merged. Hashed, so the identifier value does not spell out who was where."""
    d = rec.data
    legacy = hashlib.sha256(f"{rec.key}:{code}".encode()).hexdigest()[:32]
    unique = f"{rec.key}:{code}:{d['ho']['insurer']}:{d['re']['no']}"
    full = hashlib.sha256(unique.encode()).hexdigest()[:32]
    seen = ctx.claims
    if full in seen:
        raise MappingError(
            "RE.レセプト番号",
            f"the same receipt as line {seen[full]} (facility, 診療年月, receipt type, person, "
            "insurer and レセプト番号 all equal)",
        )
    seen[full] = rec.line
    if legacy not in seen:
        seen[legacy] = rec.line
        return "claim:" + legacy
    return "claim:" + full


def _first_day(days: list[int], ym: tuple[int, int]) -> str:
    y, m = ym
    d = days[0] if days else 1
    try:
        return iso(date(y, m, d))
    except ValueError:
        return iso(date(y, m, 1))


# --- who and where ------------------------------------------------------------------------------


def _facility(ctx: Context, header: dict[str, Any]) -> Entry:
    facility = ctx.organization(SOURCE, header["facility10"], header["facility_name"] or None)
    type_code, display = FACILITY_TYPES[header["kind"]]
    facility.resource["type"] = [
        {"coding": [coding(LOCAL + "organization-type", type_code, display)]}
    ]
    return facility


def _payer(claim: Claim, payer: Payer, row: dict[str, Any]) -> Entry:
    number = row[payer.number]
    value = f"{payer.prefix}:{number}"
    res: dict[str, Any] = {"resourceType": "Organization"}
    if payer.insurer:
        res["meta"] = {"profile": [JP_SD + "JP_Organization"]}
    res["identifier"] = [
        {"system": claim.system, "value": value},
        {"system": payer.system, "value": number},
    ]
    res["active"] = True
    if payer.insurer:
        res["type"] = [{"coding": [coding(ORG_TYPE, "ins", "Insurance Company")]}]
    return Entry("Organization", claim.system, value, res)


def _coverage(
    claim: Claim, payer: Payer, row: dict[str, Any], org: Entry, order: int | None
) -> Entry:
    value = f"coverage:{row[payer.number]}:{claim.code}"
    res: dict[str, Any] = {
        "resourceType": "Coverage",
        "meta": {"profile": [JP_SD + "JP_Coverage"]},
        "identifier": ident(claim.system, value),
        "status": "active",
        "beneficiary": claim.patient,
        "payor": [ref(org)],
    }
    if order is not None:
        res["order"] = order
    return Entry("Coverage", claim.system, value, res)


def _payers(claim: Claim) -> Iterator[tuple[Entry, Entry]]:
    """(payer, coverage) for the insurer (HO, the focal coverage) and each public payer (KO,
    ordered after it)."""
    ho = PAYERS["HO"]
    insurer = _payer(claim, ho, claim.data["ho"])
    yield insurer, _coverage(claim, ho, claim.data["ho"], insurer, None)
    ko = PAYERS["KO"]
    for i, row in enumerate(claim.data["ko"]):
        org = _payer(claim, ko, row)
        yield org, _coverage(claim, ko, row, org, i + 2)


# --- diagnoses ----------------------------------------------------------------------------------


def _condition(claim: Claim, sy: dict[str, Any], recorded: str) -> Entry:
    """SY: the diagnosis under masterB, its outcome (転帰) and modifiers (masterZ)."""
    value = f"{claim.key}:SY:{sy['code']}:{''.join(sy['modifiers'])}"
    label, clinical = OUTCOME[sy["outcome"]]
    code: dict[str, Any] = {"coding": [coding(MASTER_B, sy["code"])]}
    if sy.get("name"):
        code["text"] = sy["name"]
    extension = [
        {
            "url": OUTCOME_EXT,
            "valueCodeableConcept": {"coding": [coding(OUTCOME_CS, sy["outcome"], label)]},
        }
    ]
    if sy["modifiers"]:
        extension.append(
            {
                "url": LOCAL + "uke-modifier",
                "valueCodeableConcept": {"coding": [coding(MASTER_Z, z) for z in sy["modifiers"]]},
            }
        )
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "meta": {"profile": [JP_SD + "JP_Condition"]},
        "identifier": ident(claim.system, value),
        "clinicalStatus": {"coding": [coding(CLINICAL, clinical)]},
        "category": [{"coding": [coding(CONDITION_CATEGORY, "encounter-diagnosis")]}],
        "code": code,
        "subject": claim.patient,
        "onsetDateTime": iso(sy["start"]),
        "recordedDate": recorded,
        "extension": extension,
    }
    return Entry("Condition", claim.system, value, res)


def _diagnosis(sequence: int, sy: dict[str, Any], condition: Entry) -> dict[str, Any]:
    dg: dict[str, Any] = {"sequence": sequence, "diagnosisReference": ref(condition)}
    if sy["primary"]:
        dg["type"] = [{"coding": [coding(DIAG_TYPE, "principal")]}]
    return dg


# --- lines of the claim -------------------------------------------------------------------------


def _si_lines(d: dict[str, Any]) -> Iterator[Line]:
    for si in d["si"]:
        yield Line(si, si["times"], si["days"])


def _iy_lines(d: dict[str, Any]) -> Iterator[Line]:
    """医科: one line per IY. 調剤: per prescription group (SH), one per IY and dispensing
    (CZ): handed over on the CZ's 調剤年月日, for its 調剤数量 days."""
    for iy in d["iy"]:
        yield Line(iy, iy.get("times", 1), iy.get("days", []))
    for group in d.get("rx", []):
        for cz in group["cz"] or [None]:
            for iy in group["iy"]:
                days = [cz["dispensed"].day] if cz else iy.get("days", [])
                yield Line(iy, iy.get("times", 1), days, cz)


def _to_lines(d: dict[str, Any]) -> Iterator[Line]:
    for to in d["to"]:
        yield Line(to, to["times"], to["days"])


def _procedure(claim: Claim, line: Line) -> Entry:
    """SI: a procedure (masterS), performed by the facility on its first day."""
    si = line.row
    value = claim.line_key("SI", si["code"])
    res = {
        "resourceType": "Procedure",
        "identifier": ident(claim.system, value),
        "status": "completed",
        "code": {"coding": [coding(MASTER_S, si["code"])]},
        "subject": claim.patient,
        "performedDateTime": _first_day(si["days"], claim.ym),
        "performer": [{"actor": ref(claim.facility)}],
    }
    return Entry("Procedure", claim.system, value, res)


def _dispense(claim: Claim, line: Line) -> Entry:
    """IY: a medicine handed over. No JP_MedicationDispense: it requires the Rp number, the
    order in the Rp and the quantity's unit code, which a receipt does not carry
    (phr_server/profiles.py)."""
    iy, cz = line.row, line.cz
    value = claim.line_key("IY", iy["code"])
    handed = iso(cz["dispensed"]) if cz else _first_day(iy.get("days", []), claim.ym)
    res: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "identifier": ident(claim.system, value),
        "status": "completed",
        "medicationCodeableConcept": {"coding": [coding(MASTER_Y, iy["code"])]},
        "subject": claim.patient,
        "performer": [{"actor": ref(claim.facility)}],
        "whenHandedOver": handed,
    }
    if iy.get("amount") is not None:
        res["quantity"] = {"value": iy["amount"]}
    if cz and cz.get("days_supply"):
        res["daysSupply"] = {"value": cz["days_supply"], "unit": "日", "system": UCUM, "code": "d"}
    return Entry("MedicationDispense", claim.system, value, res)


LINES = (
    LineKind("SI", MASTER_S, _si_lines, _procedure, "procedure"),
    LineKind("IY", MASTER_Y, _iy_lines, _dispense),
    LineKind("TO", MASTER_T, _to_lines),
)


def _item(sequence: int, system: str, line: Line, ym: tuple[int, int]) -> dict[str, Any]:
    row = line.row
    item: dict[str, Any] = {
        "sequence": sequence,
        "productOrService": {"coding": [coding(system, row["code"])]},
        "servicedDate": _first_day(line.days, ym),
        "quantity": {"value": line.times},
    }
    if row.get("section"):
        item["category"] = {"coding": [coding(LOCAL + "uke-section", row["section"])]}
    if row.get("points") is not None:
        item["net"] = {"value": row["points"] * 10, "currency": "JPY"}
    return item


# --- the claim ----------------------------------------------------------------------------------


def _claim_type(claim: Claim) -> str:
    """調剤 → pharmacy; 医科 inpatient (an odd 4th digit of the receipt type) → institutional,
    outpatient → professional."""
    if claim.pharmacy:
        return "pharmacy"
    return "institutional" if int(claim.data["re"]["type"][3]) % 2 == 1 else "professional"


def _supporting_info(d: dict[str, Any]) -> list[dict[str, Any]]:
    """CO: comment codes (masterC); their free text is never read."""
    return [
        {
            "sequence": i + 1,
            "category": {"coding": [coding(INFO_CATEGORY, "info")]},
            "code": {"coding": [coding(MASTER_C, co["code"])]},
        }
        for i, co in enumerate(d["co"])
    ]


def _total(ho: dict[str, Any]) -> list[dict[str, Any]]:
    """HO 合計点数, in yen (one point is ten yen)."""
    if ho.get("points") is None:
        return []
    return [
        {
            "category": {"coding": [coding(ADJUDICATION, "submitted")]},
            "amount": {"value": ho["points"] * 10, "currency": "JPY"},
        }
    ]


def map_record(ctx: Context, rec: Record, code: str) -> list[Entry]:
    """One receipt's resources, in Bundle order: Patient, facility, payers with their
    coverages, conditions, the lines' resources (LINES order), and the ExplanationOfBenefit
    that references them all."""
    d = rec.data
    header, re = d["header"], d["re"]
    system = ctx.record_system(SOURCE)
    key = claim_key(ctx, rec, code)
    claim = Claim(rec, code, system, key, ctx.patient_ref(code), _facility(ctx, header))
    entries: list[Entry] = [ctx.patient(code), claim.facility]

    insurance = []
    payers = list(_payers(claim))
    for i, (org, coverage) in enumerate(payers):
        entries += [org, coverage]
        insurance.append({"focal": i == 0, "coverage": ref(coverage)})

    y, m = claim.ym
    period = {"start": iso(date(y, m, 1)), "end": iso(month_end(y, m))}
    diagnosis = []
    for i, sy in enumerate(d["sy"]):
        condition = _condition(claim, sy, period["end"])
        entries.append(condition)
        diagnosis.append(_diagnosis(i + 1, sy, condition))

    lists: dict[str, list[dict[str, Any]]] = {"procedure": [], "item": []}
    for kind in LINES:
        for line in kind.lines(d):
            if kind.resource is not None:
                entry = kind.resource(claim, line)
                entries.append(entry)
                if kind.eob_list is not None:
                    refs = lists[kind.eob_list]
                    refs.append(
                        {"sequence": len(refs) + 1, f"{kind.eob_list}Reference": ref(entry)}
                    )
            items = lists["item"]
            items.append(_item(len(items) + 1, kind.system, line, claim.ym))

    by, bm = header["billing"]
    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": ident(system, claim.key),
        "status": "active",
        "type": {"coding": [coding(CLAIM_TYPE, _claim_type(claim))]},
        "subType": {"coding": [coding(LOCAL + "uke-receipt-type", re["type"])]},
        "use": "claim",
        "patient": claim.patient,
        "billablePeriod": period,
        "created": iso(date(by, bm, 1)),
        "insurer": ref(payers[0][0]),
        "provider": ref(claim.facility),
        "outcome": "complete",
        "insurance": insurance,
    }
    optional = {
        "diagnosis": diagnosis,
        "procedure": lists["procedure"],
        "item": lists["item"],
        "supportingInfo": _supporting_info(d),
        "total": _total(d["ho"]),
    }
    eob.update({k: v for k, v in optional.items() if v})
    entries.append(Entry("ExplanationOfBenefit", system, claim.key, eob))
    return entries
