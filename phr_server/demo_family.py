"""The demo family's records (synthetic): a parent with a checkup and an insurance claim, and a
child with growth measurements from the routine infant checkups and the first year's routine
vaccinations, coded as the demo city's connector codes them (LOINC + JP Core body
measurements, the platform's local vaccine codes), so the portal shows real-looking pages.

The family then moved to the second demo city (`moved_resources`): there they have other
pseudonymous codes, so other Patients, and the records since the move (the child's 1-year
boosters and varicella, a measurement, the parent's checkup). Each city's load has one
Provenance naming the city it came from (agent `custodian`, as a connector's load says it)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from phr_core.demo_data import (
    DEMO_FAMILY,
    DEMO_MUNICIPALITY,
    MOVED_FAMILY,
    SECOND_MUNICIPALITY,
    DemoFamily,
    MovedFamily,
)
from phr_core.identifiers import patient_id, pseudonym_system, source_record_system
from phr_server.provenance import provenance_agents

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
JP_BODY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationBodyMeasurementCode_CS"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VACCINE_SYSTEM = "urn:phr-platform:code:vaccine"
# Patient ids are derived from the city's code as the PHR server derives them (the IdP names
# the SMART launch patient the same way).
PARENT_ID = patient_id(DEMO_MUNICIPALITY.code, DEMO_FAMILY.parent_code)
CHILD_ID = patient_id(DEMO_MUNICIPALITY.code, DEMO_FAMILY.child_code)
# The same two people in the second city, after the move.
MOVED_PARENT_ID = patient_id(SECOND_MUNICIPALITY.code, MOVED_FAMILY.parent_code)
MOVED_CHILD_ID = patient_id(SECOND_MUNICIPALITY.code, MOVED_FAMILY.child_code)

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


def _patient(
    rid: str, code: str, birth: date, sex: str, city: str = DEMO_MUNICIPALITY.code
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": rid,
        "identifier": [{"system": pseudonym_system(city), "value": code}],
        "gender": sex,
        "birthDate": birth.isoformat(),
    }


def _observation(
    rid: str, patient: str, when: date, loinc: str, display: str, jp: str | None,
    jp_display: str, value: float, unit: str, category: str = "vital-signs",
    city: str = DEMO_MUNICIPALITY.code,
) -> dict[str, Any]:  # fmt: skip
    coding = [{"system": LOINC, "code": loinc, "display": display}]
    if jp:
        coding.append({"system": JP_BODY, "code": jp, "display": jp_display})
    return {
        "resourceType": "Observation",
        "id": rid,
        "identifier": [{"system": source_record_system(city, "mch"), "value": rid}],
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": coding, "text": jp_display},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _immunization(
    rid: str, code: str, display: str, dose: int, when: date,
    city: str = DEMO_MUNICIPALITY.code, patient: str = CHILD_ID,
) -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "Immunization",
        "id": rid,
        "identifier": [{"system": source_record_system(city, "vaccination"), "value": rid}],
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": VACCINE_SYSTEM, "code": code, "display": display}],
            "text": display,
        },
        "patient": {"reference": f"Patient/{patient}"},
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
    out.append(_provenance(DEMO_MUNICIPALITY.code, out, today - timedelta(days=19)))
    return out


# After the move, in the second city: (vaccine code, display, dose number, age in days).
MOVED_CHILD_VACCINATIONS = [
    ("VZV", "水痘", 1, 392),
    ("PCV20", "小児用肺炎球菌（20価）", 4, 392),
    ("DPT-IPV-Hib", "五種混合", 4, 397),
]
MOVED_CHILD_MEASUREMENT = (395, 9.10, 75.0, 45.5)


def moved_resources(
    family: DemoFamily = DEMO_FAMILY, moved: MovedFamily = MOVED_FAMILY, today: date | None = None
) -> list[dict]:
    """The family's records in the second city, all from after the move, the Patients first."""
    today = today or date.today()
    city = SECOND_MUNICIPALITY.code
    birth = family.child_birth(today)
    moved_on = moved.moved_on(today)
    out: list[dict] = [
        _patient(MOVED_PARENT_ID, moved.parent_code, family.parent_birth, "female", city),
        _patient(MOVED_CHILD_ID, moved.child_code, birth, family.child_sex, city),
    ]
    age, *values = MOVED_CHILD_MEASUREMENT
    when = birth + timedelta(days=age)
    for (name, loinc, display, jp, jp_display, unit), value in zip(MEASURES, values, strict=True):
        out.append(
            _observation(f"demo-b-child-{name}-{age}", MOVED_CHILD_ID, when, loinc, display, jp,
                         jp_display, value, unit, city=city)
        )  # fmt: skip
    for code, display, dose, age in MOVED_CHILD_VACCINATIONS:
        when = birth + timedelta(days=age)
        if moved_on <= when <= today:
            rid = f"demo-b-child-vaccine-{code.lower()}-{dose}"
            out.append(_immunization(rid, code, display, dose, when, city, MOVED_CHILD_ID))
    checkup = today - timedelta(days=5)
    out.append(
        _observation("demo-b-parent-weight", MOVED_PARENT_ID, checkup, "29463-7", "Body weight",
                     "31000296", "体重", 54.0, "kg", city=city)
    )  # fmt: skip
    out.append(_provenance(city, out, today - timedelta(days=1)))
    return out


def _provenance(city: str, records: list[dict], when: date) -> dict[str, Any]:
    """Which city the records came from, as the connector's loads say it (custodian: the city)."""
    return {
        "resourceType": "Provenance",
        "id": f"demo-provenance-{city}",
        "target": [{"reference": f"{r['resourceType']}/{r['id']}"} for r in records],
        "recorded": f"{when.isoformat()}T09:00:00+09:00",
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ]
        },
        "agent": provenance_agents(f"connector-{city}", city),
    }
