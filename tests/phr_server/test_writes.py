"""Writes: transaction Bundles from connectors, idempotent loads, versioning, atomic
rejection with pointed OperationOutcomes, and the municipality boundary."""

from __future__ import annotations

import copy
import json

from sqlalchemy import func, select

from phr_core.db import Database
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM
from phr_server.models import ResourceVersion, StoredResource
from tests.phr_server.conftest import (
    MUNI,
    OTHER_MUNI,
    World,
    family_bundle,
    ids_by_identifier,
    observation,
    patient,
    transaction,
)


def _count(world: World, model) -> int:  # type: ignore[no-untyped-def]
    """Rows of `model`, AuditEvents (written for every request) left out."""
    db = Database(world.settings.database_urls["fhir"])
    try:
        with db.session() as s:
            q = select(func.count()).select_from(model).where(model.resource_type != "AuditEvent")
            return s.scalar(q)
    finally:
        db.dispose()


def test_transaction_creates_links_and_records_provenance(world: World) -> None:
    bundle = family_bundle()
    resp = world.post(world.connector(), bundle)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 9
    assert all(e["response"]["etag"] == 'W/"1"' for e in body["entry"])
    ids = ids_by_identifier(body, bundle)
    # urn:uuid references were replaced by the assigned ids
    obs = world.get("/" + ids["urn:uuid:o3"], world.connector(scope="system/*.rs")).get_json()
    assert obs["subject"]["reference"] == ids["urn:uuid:c1"]
    assert obs["meta"]["versionId"] == "1"
    # one Provenance per Patient whose records the batch wrote, naming each created version
    prov = world.get("/Provenance", world.connector(scope="system/*.rs")).get_json()
    provs = [e["resource"] for e in prov["entry"]]
    assert len(provs) == 3  # P1, C1, S1
    targets = {t["reference"] for p in provs for t in p["target"]}
    assert targets == {f"{ref}/_history/1" for ref in ids.values()}
    for p in provs:  # each names one Patient's records only
        assert (
            len({t["reference"] for t in p["target"] if t["reference"].startswith("Patient/")}) == 1
        )
    # ... and the source city: the custodian, on whose behalf the connector loaded them.
    agents = provs[0]["agent"]
    city_id = {"system": MUNICIPALITY_CODE_SYSTEM, "value": MUNI}
    city = {"type": "Organization", "identifier": city_id}
    assert [a["type"]["coding"][0]["code"] for a in agents] == ["assembler", "custodian"]
    assert agents[0]["onBehalfOf"] == city and agents[1]["who"] == city
    from fhir.resources.R4B.provenance import Provenance

    for p in provs:
        Provenance.model_validate(p)  # valid FHIR R4


def test_loading_the_same_bundle_twice_changes_nothing(world: World) -> None:
    token = world.connector()
    first = world.post(token, family_bundle()).get_json()
    resources, versions = _count(world, StoredResource), _count(world, ResourceVersion)
    second = world.post(token, family_bundle())
    assert second.status_code == 200
    entries = second.get_json()["entry"]
    for a, b in zip(first["entry"], entries, strict=True):
        assert b["response"]["status"] == "200 OK"
        assert b["response"]["location"] == a["response"]["location"]
        assert b["response"]["etag"] == 'W/"1"'
        issue = b["response"]["outcome"]["issue"][0]
        assert (issue["code"], issue["diagnostics"]) == ("informational", "unchanged")
    # nothing new: no version, no Provenance
    assert (_count(world, StoredResource), _count(world, ResourceVersion)) == (resources, versions)


def test_a_corrected_record_makes_a_new_version(world: World) -> None:
    token = world.connector()
    bundle = family_bundle()
    ids = ids_by_identifier(world.post(token, bundle).get_json(), bundle)
    fixed = family_bundle()
    fixed["entry"][5]["resource"]["valueQuantity"]["value"] = 12.7  # o3, the child's weight
    resp = world.post(token, fixed).get_json()
    statuses = [e["response"]["status"] for e in resp["entry"]]
    assert statuses[5] == "200 OK" and resp["entry"][5]["response"]["etag"] == 'W/"2"'
    assert "outcome" not in resp["entry"][5]["response"]
    assert all("outcome" in e["response"] for i, e in enumerate(resp["entry"]) if i != 5)
    read = world.connector(scope="system/*.rs")
    ref = ids["urn:uuid:o3"]
    assert world.get("/" + ref, read).get_json()["valueQuantity"]["value"] == 12.7
    assert world.get(f"/{ref}/_history/1", read).get_json()["valueQuantity"]["value"] == 12.5
    hist = world.get(f"/{ref}/_history", read).get_json()
    assert hist["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in hist["entry"]] == ["2", "1"]
    assert world.get(f"/{ref}/_history/3", read).status_code == 404


def test_read_serves_etag_and_if_match_guards_updates(world: World) -> None:
    token = world.connector()
    bundle = family_bundle()
    ids = ids_by_identifier(world.post(token, bundle).get_json(), bundle)
    ref = ids["urn:uuid:o1"]
    read = world.get("/" + ref, token)
    assert read.headers["ETag"] == 'W/"1"'
    assert read.headers["Content-Type"].startswith("application/fhir+json")
    resource = read.get_json()
    resource["valueQuantity"]["value"] = 56.0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    stale = world.client.put(
        "/" + ref, data=json.dumps(resource), headers={**headers, "If-Match": 'W/"7"'}
    )
    assert stale.status_code == 412
    assert stale.get_json()["resourceType"] == "OperationOutcome"
    ok = world.client.put(
        "/" + ref, data=json.dumps(resource), headers={**headers, "If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200, ok.get_json()
    assert ok.headers["ETag"] == 'W/"2"'
    again = world.client.put(
        "/" + ref, data=json.dumps(resource), headers={**headers, "If-Match": 'W/"1"'}
    )
    assert again.status_code == 412
    # a transaction entry with a stale ifMatch fails the whole Bundle
    b = transaction(observation("urn:uuid:x", ids["urn:uuid:p1"], "w-p1-1", value=1.0))
    b["entry"][0]["request"]["ifMatch"] = 'W/"1"'
    assert world.post(token, b).status_code == 412


def _invalid(world: World, mutate, expression: str, *, index: int = 3) -> dict:  # type: ignore[no-untyped-def]
    bundle = family_bundle()
    mutate(bundle["entry"][index]["resource"])
    before = _count(world, StoredResource)
    resp = world.post(world.connector(), bundle)
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    expressions = [e for i in body["issue"] for e in i.get("expression", [])]
    assert expression in expressions, body
    assert _count(world, StoredResource) == before  # atomic: nothing of the Bundle was stored
    return body


def test_one_bad_status_rejects_the_whole_bundle(world: World) -> None:
    _invalid(world, lambda r: r.update(status="bogus"), "Bundle.entry[3].resource.status")


def test_validation_catches_what_the_models_miss(world: World) -> None:
    _invalid(world, lambda r: r.update(gender="x"), "Bundle.entry[0].resource.gender", index=0)
    _invalid(
        world,
        lambda r: r["valueQuantity"].update(value="62.5"),
        "Bundle.entry[3].resource.valueQuantity.value",
    )
    _invalid(
        world,
        lambda r: (
            r.pop("effectiveDateTime"),
            r.update(effectivePeriod={"start": "2024-02-01", "end": "2024-01-01"}),
        ),
        "Bundle.entry[3].resource.effectivePeriod",
    )
    _invalid(
        world,
        lambda r: r["valueQuantity"].pop("system"),
        "Bundle.entry[3].resource.valueQuantity.system",
    )
    _invalid(
        world,
        lambda r: r.update(subject={"reference": "urn:uuid:i1"}),  # an Immunization is no subject
        "Bundle.entry[3].resource.subject.reference",
    )
    _invalid(world, lambda r: r.update(foo=1), "Bundle.entry[3].resource.foo")
    _invalid(
        world,
        lambda r: r.update(effectiveDateTime="2024-05-01T10:00:00"),  # time without zone
        "Bundle.entry[3].resource.effectiveDateTime",
    )
    _invalid(
        world,
        lambda r: r.update(subject={"reference": "Patient/does-not-exist"}),
        "Bundle.entry[3].resource.subject.reference",
    )


def test_several_problems_are_all_reported(world: World) -> None:
    bundle = family_bundle()
    bundle["entry"][3]["resource"]["status"] = "bogus"
    bundle["entry"][6]["resource"]["valueQuantity"]["value"] = "90"
    body = world.post(world.connector(), bundle).get_json()
    expressions = {e for i in body["issue"] for e in i["expression"]}
    assert {
        "Bundle.entry[3].resource.status",
        "Bundle.entry[6].resource.valueQuantity.value",
    } <= expressions


def test_conditional_create_with_if_none_exist(world: World) -> None:
    token = world.connector()
    bundle = family_bundle()
    ids = ids_by_identifier(world.post(token, bundle).get_json(), bundle)
    entry = observation("urn:uuid:n", ids["urn:uuid:p1"], "w-p1-1", value=99.0)
    system = entry["resource"]["identifier"][0]["system"]
    entry["request"] = {
        "method": "POST",
        "url": "Observation",
        "ifNoneExist": f"identifier={system}|w-p1-1",
    }
    resp = world.post(token, transaction(entry)).get_json()["entry"][0]["response"]
    assert resp["status"] == "200 OK" and resp["outcome"]["issue"][0]["diagnostics"] == "unchanged"
    assert resp["location"].startswith(ids["urn:uuid:o1"])
    entry["request"]["ifNoneExist"] = f"identifier={system}|brand-new"
    entry["resource"]["identifier"][0]["value"] = "brand-new"
    resp = world.post(token, transaction(entry)).get_json()["entry"][0]["response"]
    assert resp["status"] == "201 Created"


def test_connectors_stay_inside_their_municipality(world: World) -> None:
    token = world.connector()
    bundle = family_bundle()
    ids = ids_by_identifier(world.post(token, bundle).get_json(), bundle)
    other = world.connector(OTHER_MUNI)
    # our city's pseudonym system is not theirs to write
    resp = world.post(other, transaction(patient("urn:uuid:z", "P1", muni=MUNI)))
    assert resp.status_code == 400
    assert "Bundle.entry[0].request.url" in json.dumps(
        resp.get_json()
    ) or "identifier" in json.dumps(resp.get_json())
    # nor may they reference our Patients, nor read our data
    stray = observation("urn:uuid:y", ids["urn:uuid:p1"], "x", muni=OTHER_MUNI)
    resp = world.post(other, transaction(stray))
    assert resp.status_code == 400
    assert "Bundle.entry[0].resource.subject.reference" in json.dumps(resp.get_json())
    assert (
        world.get("/" + ids["urn:uuid:o1"], world.connector(OTHER_MUNI, "system/*.rs")).status_code
        == 404
    )
    # their own Patient, with their own code system, is fine, and separate from ours
    resp = world.post(other, transaction(patient("urn:uuid:z", "P1", muni=OTHER_MUNI)))
    assert resp.get_json()["entry"][0]["response"]["status"] == "201 Created"


def test_write_scopes_and_who_may_write(world: World) -> None:
    bundle = family_bundle()
    narrow = world.connector(scope="system/Patient.cu")
    resp = world.post(narrow, bundle)
    assert resp.status_code == 403
    assert _count(world, StoredResource) == 0
    parent = world.user("sub-parent", codes=[("P1", "self")])
    assert world.post(parent, bundle).status_code == 403
    assert world.post(world.connector(scope="system/*.rs"), bundle).status_code == 403
    # AuditEvents are the server's own
    audit = copy.deepcopy(bundle)
    audit["entry"] = [
        {
            "resource": {
                "resourceType": "AuditEvent",
                "type": {"code": "rest"},
                "recorded": "2024-01-01T00:00:00Z",
                "agent": [{"requestor": True}],
                "source": {"observer": {"display": "x"}},
            },
            "request": {"method": "POST", "url": "AuditEvent"},
        }
    ]
    resp = world.post(world.connector(), audit)
    assert resp.status_code == 400
    assert "AuditEvent is written by the server only" in json.dumps(resp.get_json())


def test_not_a_transaction(world: World) -> None:
    token = world.connector()
    resp = world.post(token, {"resourceType": "Bundle", "type": "batch", "entry": []})
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["Bundle.type"]
    resp = world.client.post("/", data="{", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400
