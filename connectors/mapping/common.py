"""Shared pieces of the FHIR mapping: code systems, profiles, identifiers and references."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from connectors.register import ConsentedIndex
from phr_core.identifiers import pseudonym_system, source_record_system

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
JP_OBS_CATEGORY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
JP_BODY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationBodyMeasurementCode_CS"
JP_SD = "http://jpfhir.jp/fhir/core/StructureDefinition/"
JP_EXT = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/"
# Identifier systems as the JP Core IG's FSH fixes them (jami-fhir-jp-wg/jp-core-v1x at
# cb1f4ee19ecdb4edaebfe349c43caddbf32ff276, input/fsh/profiles/JP_Organization.fsh and
# aliases-jpcore.fsh; docs/codes.md lists every system with its source):
# identifier[medicalInstitutionCode].system, the 10-digit 医療機関コード (都道府県 + 点数表 + 7);
FACILITY_SYSTEM = "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no"
# the JP_Organization_InsuranceOrganizationNo extension: an Identifier holding the 7 digits
# under $JP_IdSystem_MedicalOrganizationID;
ORGANIZATION_NO_EXT = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationNo"
FACILITY_NO_SYSTEM = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/MedicalOrganizationID"
# identifier[insurerNumber].system ($JP_IdSystem_InsurerNumber, "exactly"), the 保険者番号;
INSURER_SYSTEM = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber"
# 公費負担者番号: JP Core defines no system at that commit; the OID of the MHLW's HL7 OID table
# (1.2.392.100495.20.3.71, 公費負担者番号) stays.
PUBLIC_PAYER_OID = "urn:oid:1.2.392.100495.20.3.71"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# The platform's own code systems for codes that have no national system (documented in
# connectors/docs/codes.md).
LOCAL = "urn:phr-platform:code:"

NAMESPACE = uuid.UUID("6f1f0b8e-5c0a-4d43-9a53-3f0f6c1e8a10")


class MappingError(ValueError):
    """A record cannot be mapped; names the field, never its value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(slots=True)
class Entry:
    """One resource in a transaction, stored under a conditional identifier."""

    resource_type: str
    system: str
    value: str
    resource: dict[str, Any]
    # Computed once: the pipeline asks for it several times per entry (batching, the sent
    # cache, the Bundle), and a UUIDv5 is a SHA-1.
    full_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.full_url = full_url(self.resource_type, self.system, self.value)

    @property
    def request_url(self) -> str:
        system = quote(self.system, safe=":")
        return f"{self.resource_type}?identifier={system}|{quote(self.value, safe='')}"


def full_url(resource_type: str, system: str, value: str) -> str:
    """A deterministic urn:uuid for a resource's conditional identity, so that every entry in a
    batch can reference it and the same resource gets the same fullUrl in every run."""
    return "urn:uuid:" + str(uuid.uuid5(NAMESPACE, f"{resource_type}|{system}|{value}"))


@dataclass
class Context:
    """What a mapper needs besides the record: the city, consented demographics and (for the
    mother link) the set of consented codes of the same category."""

    municipality: str
    index: ConsentedIndex = field(default_factory=ConsentedIndex)
    consented: set[str] = field(default_factory=set)
    # Claim keys this file's consented receipts were given, → the receipt's line: what keeps
    # two receipts of one file apart (mapping/uke.py `claim_key`). One Context per file, so it
    # grows with the consenting people's receipts of one file, not with the files.
    claims: dict[str, int] = field(default_factory=dict)

    def record_system(self, source: str) -> str:
        return source_record_system(self.municipality, source)

    @property
    def patient_system(self) -> str:
        return pseudonym_system(self.municipality)

    def patient(self, code: str) -> Entry:
        """The Patient: only the pseudonymous code, sex and birth date (no names, addresses,
        resident or card numbers)."""
        res: dict[str, Any] = {
            "resourceType": "Patient",
            "meta": {"profile": [JP_SD + "JP_Patient"]},
            "identifier": [{"system": self.patient_system, "value": code}],
        }
        demo = self.index.demographics.get(code)
        if demo is not None:
            if demo.gender in ("male", "female"):
                res["gender"] = demo.gender
            res["birthDate"] = demo.birthdate.isoformat()
        return Entry("Patient", self.patient_system, code, res)

    def patient_ref(self, code: str) -> dict[str, str]:
        return {"reference": full_url("Patient", self.patient_system, code)}

    def organization(self, source: str, code10: str, name: str | None = None) -> Entry:
        """A care facility under its 医療機関コード, one resource per source (so sources that know
        different details about it never overwrite each other)."""
        system = self.record_system(source)
        value = f"org:{code10}"
        res: dict[str, Any] = {
            "resourceType": "Organization",
            "meta": {"profile": [JP_SD + "JP_Organization"]},
            "extension": [
                {
                    "url": ORGANIZATION_NO_EXT,
                    "valueIdentifier": {"system": FACILITY_NO_SYSTEM, "value": code10[3:]},
                }
            ],
            "identifier": [
                {"system": system, "value": value},
                {"system": FACILITY_SYSTEM, "value": code10},
            ],
            "active": True,
        }
        if name:
            res["name"] = name
        return Entry("Organization", system, value, res)


def ref(entry: Entry) -> dict[str, str]:
    return {"reference": entry.full_url}


def ident(system: str, value: str) -> list[dict[str, str]]:
    return [{"system": system, "value": value}]


def quantity(value: float | int, unit: str, code: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def iso(d: date) -> str:
    return d.isoformat()
