"""The rules validation.py adds so that the server refuses what an independent FHIR validator
flags (invariants.py, vital_signs.py): one bad resource per rule, refused with an issue at the
element; the same resources made good are accepted; a transaction points at entry and
element."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from phr_server.validation import Invalid, validate
from tests.phr_server.conftest import World, observation, patient, transaction

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
VS = "http://terminology.hl7.org/CodeSystem/observation-category"
PATIENT = {"reference": "Patient/p1"}


def weight(**extra: Any) -> dict[str, Any]:
    """A valid body weight: the R4 bodyweight profile's shape."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": VS, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": PATIENT,
        "effectiveDateTime": "2024-05-01",
        "valueQuantity": {"value": 3.1, "unit": "kg", "system": UCUM, "code": "kg"},
        **extra,
    }


def bp(*components: dict[str, Any]) -> dict[str, Any]:
    r = weight(code={"coding": [{"system": LOINC, "code": "85354-9"}]}, component=list(components))
    del r["valueQuantity"]
    return r


def comp(code: str, value: float = 120) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    }


CONDITION = {
    "resourceType": "Condition",
    "clinicalStatus": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        ]
    },
    "code": {"text": "かぜ"},
    "subject": PATIENT,
}
ORG = {"resourceType": "Organization", "name": "会津デモ内科"}
DISPENSE = {
    "resourceType": "MedicationDispense",
    "status": "completed",
    "medicationCodeableConcept": {"text": "薬"},
    "subject": PATIENT,
}

# (rule, bad resource, the expression its issue names)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("ele-1 empty string", weight(status=""), "Observation.status"),
    ("ele-1 empty object", weight(subject={}), "Observation.subject"),
    ("ele-1 empty array", weight(category=[]), "Observation.category"),
    ("ele-1 null", weight(issued=None), "Observation.issued"),
    (
        "uri without whitespace",
        weight(code={"coding": [{"system": "http://loinc .org", "code": "29463-7"}]}),
        "Observation.code.coding[0].system",
    ),
    (
        "code without padding",
        weight(code={"coding": [{"system": LOINC, "code": " 29463-7"}]}),
        "Observation.code.coding[0].code",
    ),
    (
        "ext-1",
        {**ORG, "extension": [{"url": "urn:x:ext"}]},
        "Organization.extension[0]",
    ),
    (
        "cpt-2",
        {**ORG, "telecom": [{"value": "0242-00-0000"}]},
        "Organization.telecom[0].system",
    ),
    (
        "rng-2",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueRange": {"low": {"value": 5}, "high": {"value": 2}},
        },
        "Observation.valueRange",
    ),
    ("obs-3", weight(referenceRange=[{"type": {"text": "x"}}]), "Observation.referenceRange[0]"),
    (
        "obs-7",
        weight(component=[{"code": weight()["code"], "valueString": "x"}]),
        "Observation.component[0].code",
    ),
    (
        "unknown code of an R4 code system",
        weight(category=[{"coding": [{"system": VS, "code": "vitals"}]}]),
        "Observation.category[0].coding[0].code",
    ),
    (
        "con-4",
        {**CONDITION, "abatementDateTime": "2024-06-01"},
        "Condition.clinicalStatus",
    ),
    (
        "con-5",
        {
            **CONDITION,
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "entered-in-error",
                    }
                ]
            },
        },
        "Condition.clinicalStatus",
    ),
    ("con-1", {**CONDITION, "stage": [{"type": {"text": "x"}}]}, "Condition.stage[0]"),
    ("con-2", {**CONDITION, "evidence": [{"extension": []}]}, "Condition.evidence[0]"),
    (
        "ppc-1",
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"text": "x"},
            "category": [{"text": "x"}],
            "patient": PATIENT,
        },
        "Consent.policy",
    ),
    (
        "imm-1",
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"text": "MR"},
            "patient": PATIENT,
            "occurrenceDateTime": "2024-05-01",
            "education": [{"presentationDate": "2024-05-01"}],
        },
        "Immunization.education[0]",
    ),
    (
        "mdd-1",
        {**DISPENSE, "whenPrepared": "2024-05-02", "whenHandedOver": "2024-05-01"},
        "MedicationDispense.whenHandedOver",
    ),
    ("org-1", {"resourceType": "Organization", "active": True}, "Organization"),
    ("org-2", {**ORG, "address": [{"use": "home", "text": "x"}]}, "Organization.address[0].use"),
    (
        "org-3",
        {**ORG, "telecom": [{"system": "phone", "value": "1", "use": "home"}]},
        "Organization.telecom[0].use",
    ),
    (
        "att-1",
        {"resourceType": "Patient", "photo": [{"data": "aGk="}]},
        "Patient.photo[0].contentType",
    ),
    (
        "sev-1",
        {
            "resourceType": "AuditEvent",
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
            "recorded": "2024-05-01T10:00:00+09:00",
            "agent": [{"requestor": True, "who": {"display": "app"}}],
            "source": {"observer": {"display": "phr"}},
            "entity": [{"name": "x", "query": "eA=="}],
        },
        "AuditEvent.entity[0]",
    ),
    (
        "pat-1",
        {"resourceType": "Patient", "contact": [{"gender": "female"}]},
        "Patient.contact[0]",
    ),
    (
        "contained refused",
        weight(contained=[{"resourceType": "Patient", "id": "c"}], subject={"reference": "#c"}),
        "Observation.contained",
    ),
    ("ref-1", weight(subject={"reference": "#p"}), "Observation.subject.reference"),
    ("vital signs: category", weight(category=[{"text": "x"}]), "Observation.category"),
    ("vital signs: subject", weight(subject={"display": "x"}), "Observation.subject"),
    (
        "vital signs: effective[x]",
        {k: v for k, v in weight().items() if k != "effectiveDateTime"},
        "Observation.effective[x]",
    ),
    (
        "vital signs: unit",
        weight(valueQuantity={"value": 3.1, "unit": "lb", "system": UCUM, "code": "[lb_i]"}),
        "Observation.valueQuantity.code",
    ),
    (
        "vital signs: unit required",
        weight(valueQuantity={"value": 3.1, "system": UCUM, "code": "kg"}),
        "Observation.valueQuantity.unit",
    ),
    (
        "vs-2",
        {k: v for k, v in weight().items() if k != "valueQuantity"},
        "Observation",
    ),
    ("bp: systolic and diastolic", bp(comp("8480-6")), "Observation.component"),
    (
        "vs-3",
        bp(comp("8480-6"), {"code": comp("8462-4")["code"]}),
        "Observation.component[1]",
    ),
]


@pytest.mark.parametrize(("rule", "bad", "where"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_refuses_its_bad_resource(rule: str, bad: dict[str, Any], where: str) -> None:
    with pytest.raises(Invalid) as exc:
        validate(copy.deepcopy(bad))
    found = {e for i in exc.value.issues for e in i["expression"]}
    assert where in found, (rule, exc.value.issues)


@pytest.mark.parametrize(
    "good",
    [
        weight(),
        bp(comp("8480-6"), comp("8462-4", 70)),
        CONDITION,
        {**CONDITION, "abatementDateTime": "2024-06-01", "clinicalStatus": {"text": "x"}}
        | {
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "resolved",
                    }
                ]
            }
        },
        {**ORG, "telecom": [{"system": "phone", "value": "0242-00-0000", "use": "work"}]},
        {**DISPENSE, "whenPrepared": "2024-05-01", "whenHandedOver": "2024-05-01T10:00:00+09:00"},
        {**ORG, "extension": [{"url": "urn:x:ext", "valueString": "x"}]},
    ],
)
def test_good_resources_pass(good: dict[str, Any]) -> None:
    validate(copy.deepcopy(good))


def test_a_transaction_points_at_entry_and_element(world: World) -> None:
    bad = observation("urn:uuid:o", "urn:uuid:p", "vs-1")
    bad["resource"]["category"][0]["coding"][0]["code"] = "vitals"
    bad["resource"]["identifier"][0]["system"] = "urn:phr-platform:source:072028 mch"
    resp = world.post(world.connector(), transaction(patient("urn:uuid:p", "INV1"), bad))
    assert resp.status_code == 400
    where = {e for i in resp.get_json()["issue"] for e in i["expression"]}
    assert {
        "Bundle.entry[1].resource.category[0].coding[0].code",
        "Bundle.entry[1].resource.identifier[0].system",
    } <= where
