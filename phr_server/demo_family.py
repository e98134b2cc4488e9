"""The demo family's records (synthetic): a parent with a checkup and an insurance claim, and a
child with growth measurements from the routine infant checkups and the first year's routine
vaccinations, coded as the demo city's connector codes them (LOINC + JP Core body
measurements, the platform's local vaccine codes), so the portal shows real-looking pages."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from phr_core.demo import DEMO_FAMILY, DEMO_MUNICIPALITY, DemoFamily
from phr_core.identifiers import patient_id, pseudonym_system, source_record_system

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
JP_BODY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationBodyMeasurementCode_CS"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VACCINE_SYSTEM = "urn:phr-platform:code:vaccine"
# Patient ids are derived from the city's code as the PHR server derives them (the IdP names
# the SMART launch patient the same way).
PARENT_ID = patient_id(DEMO_MUNICIPALITY.code, DEMO_FAMILY.parent_code)
CHILD_ID = patient_id(DEMO_MUNICIPALITY.code, DEMO_FAMILY.child_code)

# (age in days, weight kg, length cm, head cm): near the 2023 survey's girls' medians.
CHILD_MEASUREMENTS = [
    (0, 3.00, 48.8, 33.0),
    (30, 4.00, 52.9, 36.0),
    (100, 6.10, 60.8, 40.2),
    (190, 7.30, 66.0, 42.5),
    (280, 8.20, 70.0, 44.0),
    (370, 8.90, 74.0, 45.2),
]
# (vaccine code, display, dose number, age in days)
CHILD_VACCINATIONS = [
    ("HepB", "B型肝炎", 1, 61),
    ("Rota5", "ロタウイルス（5価）", 1, 61),
    ("DPT-IPV-Hib", "五種混合", 1, 61),
    ("PCV20", "小児用肺炎球菌（20価）", 1, 61),
    ("HepB", "B型肝炎", 2, 89),
    ("Rota5", "ロタウイルス（5価）", 2, 89),
    ("DPT-IPV-Hib", "五種混合", 2, 89),
    ("PCV20", "小児用肺炎球菌（20価）", 2, 89),
    ("Rota5", "ロタウイルス（5価）", 3, 117),
    ("DPT-IPV-Hib", "五種混合", 3, 117),
    ("PCV20", "小児用肺炎球菌（20価）", 3, 117),
    ("BCG", "BCG", 1, 160),
    ("HepB", "B型肝炎", 3, 230),
    ("MR", "麻しん風しん混合", 1, 370),
]
MEASURES = [
    ("weight", "29463-7", "Body weight", "31000296", "体重", "kg"),
    ("length", "8302-2", "Body height", "31000298", "身長", "cm"),
    ("head", "9843-4", "Head Occipital-frontal circumference", "31006116", "頭囲", "cm"),
]


def _patient(rid: str, code: str, birth: date, sex: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": rid,
        "identifier": [{"system": pseudonym_system(DEMO_MUNICIPALITY.code), "value": code}],
        "gender": sex,
        "birthDate": birth.isoformat(),
    }


def _observation(
    rid: str, patient: str, when: date, loinc: str, display: str, jp: str | None,
    jp_display: str, value: float, unit: str, category: str = "vital-signs",
) -> dict[str, Any]:  # fmt: skip
    coding = [{"system": LOINC, "code": loinc, "display": display}]
    if jp:
        coding.append({"system": JP_BODY, "code": jp, "display": jp_display})
    return {
        "resourceType": "Observation",
        "id": rid,
        "identifier": [
            {"system": source_record_system(DEMO_MUNICIPALITY.code, "mch"), "value": rid}
        ],
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": coding, "text": jp_display},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _immunization(rid: str, code: str, display: str, dose: int, when: date) -> dict[str, Any]:
    return {
        "resourceType": "Immunization",
        "id": rid,
        "identifier": [
            {"system": source_record_system(DEMO_MUNICIPALITY.code, "vaccination"), "value": rid}
        ],
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": VACCINE_SYSTEM, "code": code, "display": display}],
            "text": display,
        },
        "patient": {"reference": f"Patient/{CHILD_ID}"},
        "occurrenceDateTime": when.isoformat(),
        "primarySource": False,
        "protocolApplied": [{"doseNumberPositiveInt": dose}],
    }


def _claim(rid: str, when: date, total: int) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "identifier": [
            {"system": source_record_system(DEMO_MUNICIPALITY.code, "uke"), "value": rid}
        ],
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{PARENT_ID}"},
        "created": when.isoformat(),
        "insurer": {"display": "会津若松市国民健康保険（デモ）"},
        "provider": {"display": "会津デモ内科クリニック"},
        "outcome": "complete",
        "billablePeriod": {"start": when.isoformat(), "end": when.isoformat()},
        "insurance": [{"focal": True, "coverage": {"display": "国民健康保険"}}],
        "total": [
            {
                "category": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                            "code": "submitted",
                        }
                    ]
                },
                "amount": {"value": total, "currency": "JPY"},
            }
        ],
    }


def resources(family: DemoFamily = DEMO_FAMILY, today: date | None = None) -> list[dict]:
    """Every resource of the demo family, the Patients first."""
    today = today or date.today()
    birth = family.child_birth(today)
    out: list[dict] = [
        _patient(PARENT_ID, family.parent_code, family.parent_birth, "female"),
        _patient(CHILD_ID, family.child_code, birth, family.child_sex),
    ]
    for age, *values in CHILD_MEASUREMENTS:
        when = birth + timedelta(days=age)
        for (name, loinc, display, jp, jp_display, unit), value in zip(
            MEASURES, values, strict=True
        ):
            out.append(
                _observation(f"demo-child-{name}-{age}", CHILD_ID, when, loinc, display, jp,
                             jp_display, value, unit)
            )  # fmt: skip
    for code, display, dose, age in CHILD_VACCINATIONS:
        if age <= family.child_age_days:
            rid = f"demo-child-vaccine-{code.lower()}-{dose}"
            out.append(_immunization(rid, code, display, dose, birth + timedelta(days=age)))
    checkup = today - timedelta(days=60)
    out.append(
        _observation("demo-parent-weight", PARENT_ID, checkup, "29463-7", "Body weight",
                     "31000296", "体重", 54.2, "kg")
    )  # fmt: skip
    out.append(
        _observation("demo-parent-sbp", PARENT_ID, checkup, "8480-6", "Systolic blood pressure",
                     None, "収縮期血圧", 118, "mm[Hg]")
    )  # fmt: skip
    out.append(_claim("demo-parent-claim-1", today - timedelta(days=45), 3420))
    out.append(_claim("demo-parent-claim-2", today - timedelta(days=20), 1280))
    return out
