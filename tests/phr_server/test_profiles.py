"""JP Core profiles: what the server stores names its profile in meta.profile, the profile's
constraints are enforced with pointed OperationOutcomes, and /metadata names exactly the
profiles that are checked."""

from __future__ import annotations

import copy
from typing import Any

from phr_server.profiles import JP_CORE, JP_OBS_CATEGORY, SUPPORTED, stamp
from phr_server.validation import Invalid, validate
from tests.phr_server.conftest import World, observation, patient, transaction

BODY = JP_CORE + "JP_Observation_BodyMeasurement"


def _post(world: World, *entries: dict[str, Any]):  # type: ignore[no-untyped-def]
    return world.post(world.connector(), transaction(*entries))


def _read(world: World, location: str) -> dict[str, Any]:
    ref = location.split("/_history")[0]
    return world.get(f"/{ref}", world.connector()).get_json()


def _body_measurement(urn: str, subject: str) -> dict[str, Any]:
    entry = observation(urn, subject, "bm-1")
    res = entry["resource"]
    res["meta"] = {"profile": [BODY]}
    res["category"].insert(0, {"coding": [{"system": JP_OBS_CATEGORY, "code": "body-measurement"}]})
    return entry


def test_stored_resources_name_their_jp_core_profile(world: World) -> None:
    resp = _post(
        world,
        patient("urn:uuid:p", "PROF1"),
        observation("urn:uuid:o", "urn:uuid:p", "plain-1"),
        _body_measurement("urn:uuid:b", "urn:uuid:p"),
    )
    assert resp.status_code == 200, resp.get_json()
    locs = [e["response"]["location"] for e in resp.get_json()["entry"]]
    assert _read(world, locs[0])["meta"]["profile"] == [JP_CORE + "JP_Patient"]
    assert _read(world, locs[1])["meta"]["profile"] == [JP_CORE + "JP_Observation_Common"]
    assert _read(world, locs[2])["meta"]["profile"] == [BODY]
    # loading the same content again is still "unchanged": the stamp is deterministic
    again = _post(
        world,
        patient("urn:uuid:p", "PROF1"),
        observation("urn:uuid:o", "urn:uuid:p", "plain-1"),
        _body_measurement("urn:uuid:b", "urn:uuid:p"),
    ).get_json()
    assert all("outcome" in e["response"] for e in again["entry"])


def test_profile_constraints_point_at_entry_and_element(world: World) -> None:
    bm = _body_measurement("urn:uuid:b", "urn:uuid:p")
    res = bm["resource"]
    res["category"] = res["category"][1:]  # the body-measurement category is gone
    del res["effectiveDateTime"]
    res["effectiveInstant"] = "2024-05-01T10:00:00+09:00"
    resp = _post(world, patient("urn:uuid:p", "PROF2"), bm)
    assert resp.status_code == 400
    issues = resp.get_json()["issue"]
    where = {e for i in issues for e in i["expression"]}
    assert "Bundle.entry[1].resource.category[0]" in where
    assert "Bundle.entry[1].resource.effectiveInstant" in where
    # a body weight (LOINC 29463-7) is also held to the R4 vital signs profile (vital_signs.py)
    assert all(
        "JP_Observation_BodyMeasurement" in i["diagnostics"] or "R4 vital signs" in i["diagnostics"]
        for i in issues
    )


def test_a_lab_result_needs_its_specimen_and_code_text(world: World) -> None:
    lab = observation("urn:uuid:l", "urn:uuid:p", "lab-1", category="laboratory")
    lab["resource"]["meta"] = {"profile": [JP_CORE + "JP_Observation_LabResult"]}
    resp = _post(world, patient("urn:uuid:p", "PROF3"), lab)
    assert resp.status_code == 400
    where = {e for i in resp.get_json()["issue"] for e in i["expression"]}
    assert {
        "Bundle.entry[1].resource.category",
        "Bundle.entry[1].resource.code.text",
        "Bundle.entry[1].resource.specimen",
    } <= where


def test_jp_patient_identifier_rules(world: World) -> None:
    p = patient("urn:uuid:p", "PROF4")
    p["resource"]["identifier"].append({"system": "urn:oid:1.2.392.100495.20.3.51.123"})
    resp = _post(world, p)
    assert resp.status_code == 400
    where = {e for i in resp.get_json()["issue"] for e in i["expression"]}
    assert where == {
        "Bundle.entry[0].resource.identifier[1].value",
        "Bundle.entry[0].resource.identifier[1].system",
    }


def test_unknown_profiles_and_jp_codes_are_refused(world: World) -> None:
    p = patient("urn:uuid:p", "PROF5")
    p["resource"]["meta"] = {"profile": ["http://example.org/StructureDefinition/Mine"]}
    o = observation("urn:uuid:o", "urn:uuid:p", "code-1")
    o["resource"]["category"].append({"coding": [{"system": JP_OBS_CATEGORY, "code": "bogus"}]})
    resp = _post(world, p, o)
    assert resp.status_code == 400
    issues = resp.get_json()["issue"]
    where = {e for i in issues for e in i["expression"]}
    assert where == {
        "Bundle.entry[0].resource.meta.profile[0]",
        "Bundle.entry[1].resource.category[1].coding[0].code",
    }


def test_capability_statement_names_the_checked_profiles(world: World) -> None:
    cs = world.client.get("/metadata").get_json()
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for rtype, urls in SUPPORTED.items():
        assert by_type[rtype]["supportedProfile"] == urls
    assert "supportedProfile" not in by_type["ExplanationOfBenefit"]
    assert "supportedProfile" not in by_type["AuditEvent"]


def test_a_conforming_body_measurement_is_accepted_unchanged(world: World) -> None:
    bm = _body_measurement("urn:uuid:b", "urn:uuid:p")
    sent = copy.deepcopy(bm["resource"])
    resp = _post(world, patient("urn:uuid:p", "PROF6"), bm)
    assert resp.status_code == 200, resp.get_json()
    stored = _read(world, resp.get_json()["entry"][1]["response"]["location"])
    for k in ("category", "code", "valueQuantity", "effectiveDateTime"):
        assert stored[k] == sent[k]


# --- the other JP Core profiles (profiles.py names the FSH file of each rule) -----------------

MD = JP_CORE + "JP_MedicationDispense"
MERIT9_UNIT = "urn:oid:1.2.392.100495.20.2.101"
JP_EXT = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/"


def _issues(resource: dict[str, Any]) -> set[str]:
    try:
        validate(copy.deepcopy(resource))
    except Invalid as exc:
        return {e for i in exc.issues for e in i["expression"]}
    return set()


def _dispense(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "meta": {"profile": [MD]},
        "identifier": [
            {"system": "urn:oid:1.2.392.100495.20.3.81", "value": "1"},
            {"system": "urn:oid:1.2.392.100495.20.3.82", "value": "1"},
        ],
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.2.392.100495.20.2.71", "code": "620000001"}]
        },
        "subject": {"reference": "Patient/p1"},
        "quantity": {"value": 3, "unit": "錠", "system": MERIT9_UNIT, "code": "TAB"},
        "whenHandedOver": "2024-05-01",
        **extra,
    }


def test_jp_medication_dispense_needs_rp_quantity_and_hand_over() -> None:
    assert _issues(_dispense()) == set()
    bad = _dispense(identifier=[], quantity={"value": 3})
    del bad["whenHandedOver"]
    assert {
        "MedicationDispense.identifier",
        "MedicationDispense.quantity.code",
        "MedicationDispense.whenHandedOver",
    } <= _issues(bad)
    reference = _dispense()
    del reference["medicationCodeableConcept"]
    reference["medicationReference"] = {"reference": "Medication/m1"}
    assert "MedicationDispense.medication[x]" in _issues(reference)


def test_a_medication_dispense_naming_no_profile_is_not_given_one() -> None:
    plain = _dispense(meta={"tag": [{"code": "x"}]})
    del plain["quantity"], plain["identifier"]
    assert _issues(plain) == set()
    stamp(plain)
    assert "profile" not in plain["meta"]


def test_jp_condition_and_procedure_subjects_are_patients() -> None:
    for rtype, extra in (
        ("Condition", {"code": {"text": "かぜ"}}),
        ("Procedure", {"status": "completed", "code": {"text": "処置"}}),
    ):
        res = {"resourceType": rtype, "subject": {"reference": "Group/g1"}, **extra}
        assert f"{rtype}.subject" in _issues(res)  # JP Core's default profile applies
        res["meta"] = {"profile": [JP_CORE + f"JP_{rtype}"]}
        assert f"{rtype}.subject" in _issues(res)


def test_jp_immunization_dose_and_extensions() -> None:
    ext = JP_EXT + "JP_Immunization_DueDateOfNextDose"
    imm = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {"text": "MR"},
        "patient": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2024-05-01",
        "doseQuantity": {"value": 0.5},
        "extension": [{"url": ext, "valueDate": "2025-05-01"}] * 2,
    }
    assert {"Immunization.doseQuantity.code", "Immunization.extension"} <= _issues(imm)


def test_jp_organization_extensions_at_most_once() -> None:
    ext = JP_EXT + "JP_Organization_PrefectureNo"
    coding = {"system": "urn:oid:1.2.392.100495.20.3.21", "code": "07"}
    org = {
        "resourceType": "Organization",
        "name": "会津",
        "extension": [{"url": ext, "valueCoding": coding}] * 2,
    }
    assert "Organization.extension" in _issues(org)
    org["extension"] = org["extension"][:1]
    assert _issues(org) == set()
