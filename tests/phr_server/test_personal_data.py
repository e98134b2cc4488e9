"""The server's own door for personal data (personal_data.py): names, addresses, contact
details, photos, free text and individual numbers are refused whoever writes them, with an
OperationOutcome naming the element and never echoing the value; nothing is stored."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from phr_core.identifiers import pseudonym_system
from tests.phr_server.conftest import MUNI, World, immunization, patient, transaction

NAME = "山田 花子"
ADDRESS = "福島県会津若松市東栄町3-46"
NUMBER = "123456789018"  # the form of a 個人番号

PERSON_DETAILS: dict[str, Any] = {
    "name": [{"text": NAME, "family": "山田", "given": ["花子"]}],
    "address": [{"text": ADDRESS, "city": "会津若松市"}],
    "telecom": [{"system": "phone", "value": "0242-39-1111"}],
    "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo="}],
    "contact": [{"name": {"text": NAME}, "telecom": [{"system": "phone", "value": "0242"}]}],
}


def _expressions(resp) -> list[str]:  # type: ignore[no-untyped-def]
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return [e for i in body["issue"] for e in i.get("expression", [])]


def _no_echo(resp) -> None:  # type: ignore[no-untyped-def]
    text = resp.get_data(as_text=True)
    for secret in (NAME, "山田", ADDRESS, NUMBER):
        assert secret not in text


def _put(world: World, path: str, resource: dict[str, Any]):  # type: ignore[no-untyped-def]
    return world.client.put(
        path,
        data=json.dumps(resource),
        headers={
            "Authorization": f"Bearer {world.connector()}",
            "Content-Type": "application/fhir+json",
        },
    )


def _stored(world: World, rtype: str) -> list[dict[str, Any]]:
    found = world.get(f"/{rtype}", world.connector(scope="system/*.rs")).get_json()
    return [e["resource"] for e in found.get("entry", [])]


@pytest.mark.parametrize("element", sorted(PERSON_DETAILS))
def test_a_patient_with_personal_details_is_refused_in_a_transaction(
    world: World, element: str
) -> None:
    entry = patient("urn:uuid:p1", "P1", **{element: PERSON_DETAILS[element]})
    resp = world.post(world.connector(), transaction(entry))
    assert resp.status_code == 400
    assert f"Bundle.entry[0].resource.{element}" in _expressions(resp)
    _no_echo(resp)
    assert _stored(world, "Patient") == []


@pytest.mark.parametrize("element", ["name", "address", "telecom", "contact"])
def test_a_patient_put_with_personal_details_is_refused(world: World, element: str) -> None:
    ok = world.post(world.connector(), transaction(patient("urn:uuid:p1", "P1")))
    location = ok.get_json()["entry"][0]["response"]["location"].split("/_history")[0]
    resource = world.get("/" + location, world.connector(scope="system/*.rs")).get_json()
    changed = copy.deepcopy(resource)
    changed.pop("meta")
    changed[element] = PERSON_DETAILS[element]
    resp = _put(world, "/" + location, changed)
    assert resp.status_code == 400
    assert f"Patient.{element}" in _expressions(resp)
    _no_echo(resp)
    (stored,) = _stored(world, "Patient")
    assert element not in stored and stored["meta"]["versionId"] == "1"


def test_a_related_person_with_a_name_and_address_is_refused(world: World) -> None:
    p = patient("urn:uuid:p1", "P1")
    rp = {
        "fullUrl": "urn:uuid:m1",
        "resource": {
            "resourceType": "RelatedPerson",
            "patient": {"reference": "urn:uuid:p1"},
            "name": PERSON_DETAILS["name"],
            "address": PERSON_DETAILS["address"],
        },
        "request": {"method": "POST", "url": "RelatedPerson"},
    }
    resp = world.post(world.connector(), transaction(p, rp))
    assert resp.status_code == 400
    found = _expressions(resp)
    assert "Bundle.entry[1].resource.name" in found
    assert "Bundle.entry[1].resource.address" in found
    _no_echo(resp)


def test_an_immunization_note_is_refused(world: World) -> None:
    """The attack of the report: a name and a 12-digit number in Immunization.note."""
    imm = immunization("urn:uuid:i1", "urn:uuid:p1", "v-1")
    imm["resource"]["note"] = [{"text": f"{NAME} 個人番号 {NUMBER}"}]
    resp = world.post(world.connector(), transaction(patient("urn:uuid:p1", "P1"), imm))
    assert resp.status_code == 400
    assert _expressions(resp) == ["Bundle.entry[1].resource.note"]
    _no_echo(resp)
    assert _stored(world, "Immunization") == []


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("text", {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{NAME}</div>'}),
        ("extension", [{"url": "http://example.org/x", "valueString": NAME}]),
        ("extension", [{"url": "http://example.org/x", "valueHumanName": {"text": NAME}}]),
    ],
)  # fmt: skip
def test_narrative_and_free_text_extensions_are_refused(
    world: World, where: str, value: Any
) -> None:
    imm = immunization("urn:uuid:i1", "urn:uuid:p1", "v-1")
    imm["resource"][where] = value
    resp = world.post(world.connector(), transaction(patient("urn:uuid:p1", "P1"), imm))
    assert resp.status_code == 400
    (expr,) = _expressions(resp)
    assert expr.startswith(f"Bundle.entry[1].resource.{where}")
    _no_echo(resp)


@pytest.mark.parametrize("number", [NUMBER, "1234-5678-9018", "１２３４５６７８９０１８"])
def test_twelve_digits_are_refused_wherever_they_are(world: World, number: str) -> None:
    """In an identifier (where a resident number would become a searchable token) or a coded
    text, twelve digits in a row look like a 個人番号."""
    system = pseudonym_system(MUNI)
    by_id = patient("urn:uuid:p1", "P1")
    by_id["resource"]["identifier"].append({"system": system, "value": number})
    imm = immunization("urn:uuid:i1", "urn:uuid:p1", "v-1")
    imm["resource"]["vaccineCode"]["text"] = f"番号{number}"
    resp = world.post(world.connector(), transaction(by_id, imm))
    assert resp.status_code == 400
    assert set(_expressions(resp)) == {
        "Bundle.entry[0].resource.identifier[1].value",
        "Bundle.entry[1].resource.vaccineCode.text",
    }
    assert number not in resp.get_data(as_text=True)


def test_a_coded_text_and_thirteen_digit_codes_stay_accepted(world: World) -> None:
    """What connectors send: labels of codes, facility names, 13-digit product codes."""
    imm = immunization("urn:uuid:i1", "urn:uuid:p1", "v-1")
    imm["resource"]["vaccineCode"]["text"] = "麻しん風しん混合"
    imm["resource"]["vaccineCode"]["coding"].append(
        {"system": "urn:oid:1.2.392.100495.20.2.74", "code": "1234567890128"}
    )
    resp = world.post(world.connector(), transaction(patient("urn:uuid:p1", "P1"), imm))
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        # a connector's hashed claim identifier whose hex happens to hold twelve digits in a row
        ("claim:80e1ca7589c063245776792e4f1b0a3d", True),
        ("80e1ca7589c063245776792e4f1b0a3d80e1ca7589c063245776792e4f1b0a3d", True),
        # twelve digits alone, or inside a short hex-like run, are no digest
        ("claim:123456789012", False),
        ("claim:a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-123456789012", False),
        ("claim:ab123456789012", False),
        ("claim:x80e1ca7589c063245776792e4f1b0a3d", False),
        # twelve digits at a digest's start or end are still a number (the attack review's)
        ("個人番号:123456789012aaaaaaaaaaaaaaaaaaaa", False),
        ("note 123456789012deadbeefdeadbeefdead", False),
    ],
)
def test_a_hash_that_holds_twelve_digits_is_not_a_number(
    world: World, value: str, accepted: bool
) -> None:
    """A hex digest is random, not a 個人番号: refusing it lost one UKE claim in about a
    thousand at every load (its identifier is `claim:` and 32 hex characters)."""
    imm = immunization("urn:uuid:i1", "urn:uuid:p1", "v-1")
    imm["resource"]["identifier"] = [{"system": "urn:phr-platform:claim", "value": value}]
    resp = world.post(world.connector(), transaction(patient("urn:uuid:p1", "P1"), imm))
    if accepted:
        assert resp.status_code == 200, resp.get_json()
    else:
        assert resp.status_code == 400
        assert _expressions(resp) == ["Bundle.entry[1].resource.identifier[0].value"]
