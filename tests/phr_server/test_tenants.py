"""One PHR deployment serving several municipalities (PHR_FHIR_MUNICIPALITIES, here the
world's two): each municipality a tenant, its rows sealed under its own data key and reachable
by its own connector alone; a municipality the server does not serve is refused for writes
and erasures; a SMART launch patient opens the same person in each city."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from phr_core.identifiers import patient_id, pseudonym_system
from phr_server.models import DataKey, StoredResource
from phr_server.policy import PatientLink, launch_reach
from tests.phr_server.conftest import MUNI, OTHER_MUNI, World, observation, patient, transaction

NOT_SERVED = "131016"  # 千代田区: not one of this deployment's municipalities


def _write(world: World, muni: str, code: str) -> dict[str, str]:
    """A Patient and an Observation of `muni`, by that municipality's connector; ids by type."""
    first = world.post(world.connector(muni), transaction(patient("urn:uuid:p", code, muni=muni)))
    assert first.status_code == 200, first.get_json()
    pid = first.get_json()["entry"][0]["response"]["location"].split("/")[1]
    obs = observation("urn:uuid:o", f"Patient/{pid}", f"{code}-w", muni=muni)
    second = world.post(world.connector(muni), transaction(obs))
    assert second.status_code == 200, second.get_json()
    oid = second.get_json()["entry"][0]["response"]["location"].split("/")[1]
    return {"Patient": pid, "Observation": oid}


def test_each_municipality_is_a_tenant_under_its_own_data_key(world: World) -> None:
    a = _write(world, MUNI, "A1")
    b = _write(world, OTHER_MUNI, "B1")
    keyring = world.app.extensions["phr_keyring"]
    with world.app.extensions["phr_db"].session() as s:
        scope_of = {k.id: k.scope for k in s.scalars(select(DataKey))}
        rows = {
            (r.resource_type, r.id): r
            for r in s.scalars(select(StoredResource))
            if r.resource_type in ("Patient", "Observation")
        }
        for ids, muni in ((a, MUNI), (b, OTHER_MUNI)):
            for rtype, rid in ids.items():
                row = rows[(rtype, rid)]
                assert row.municipality == muni
                assert scope_of[row.key_id] == muni  # sealed under its own city's key
                body = json.loads(keyring.open(s, row.key_id, rtype, rid, row.version_id, row.body))
                assert body["id"] == rid
                other = keyring.current(s, OTHER_MUNI if muni == MUNI else MUNI)
                with pytest.raises(InvalidTag):  # the other tenant's key opens nothing
                    keyring.open(s, other, rtype, rid, row.version_id, row.body)


def test_a_connector_neither_reads_nor_writes_the_other_tenant(world: World) -> None:
    b = _write(world, OTHER_MUNI, "B1")
    reader = world.connector(MUNI, "system/*.rs system/*.write")
    for rtype, rid in b.items():
        assert world.get(f"/{rtype}/{rid}", reader).status_code == 404
    found = world.get(f"/Patient?identifier={pseudonym_system(OTHER_MUNI)}|B1", reader)
    assert found.status_code == 200 and not found.get_json().get("entry")
    stray = world.post(reader, transaction(patient("urn:uuid:x", "B2", muni=OTHER_MUNI)))
    assert stray.status_code == 400  # not its city's pseudonym system
    into = observation("urn:uuid:y", f"Patient/{b['Patient']}", "y", muni=MUNI)
    assert world.post(reader, transaction(into)).status_code == 400  # not its city's Patient


def test_a_municipality_the_server_does_not_serve_is_refused(world: World) -> None:
    token = world.connector(NOT_SERVED)
    resp = world.post(token, transaction(patient("urn:uuid:z", "Z1", muni=NOT_SERVED)))
    assert resp.status_code == 403
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert f"does not hold records of municipality {NOT_SERVED}" in body["issue"][0]["diagnostics"]
    single = world.client.put(
        "/Patient/x",
        data=json.dumps({"resourceType": "Patient", "id": "x"}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    )
    assert single.status_code == 403
    with world.app.extensions["phr_db"].session() as s:
        assert not list(
            s.scalars(select(StoredResource).where(StoredResource.municipality == NOT_SERVED))
        )


def test_erasure_for_a_municipality_not_served_is_refused(world: World) -> None:
    a = _write(world, MUNI, "A1")
    cid = world.settings.option("PHR_CONSENT_SERVICE_CLIENT_ID")
    token = world.token({"sub": cid, "client_id": cid, "scope": "phr/erase"})

    def erase(*targets: tuple[str, str]) -> Any:
        params = [
            {"name": "patient", "valueIdentifier": {"system": pseudonym_system(m), "value": c}}
            for m, c in targets
        ]
        return world.client.post(
            "/$erase",
            data=json.dumps({"resourceType": "Parameters", "parameter": params}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )

    refused = erase((MUNI, "A1"), (NOT_SERVED, "Z1"))
    assert refused.status_code == 422
    assert NOT_SERVED in refused.get_json()["issue"][0]["diagnostics"]
    reader = world.connector(MUNI, "system/*.rs")
    assert world.get(f"/Patient/{a['Patient']}", reader).status_code == 200  # all or nothing
    assert erase((MUNI, "A1")).status_code == 200
    assert world.get(f"/Patient/{a['Patient']}", reader).status_code == 404


def test_the_launch_patient_opens_the_same_person_in_each_city() -> None:
    links = [
        PatientLink(MUNI, "P-a", "self"),
        PatientLink(MUNI, "C-a", "child", "2024-10"),
        PatientLink(MUNI, "D-a", "child", "2021-03"),
        PatientLink(OTHER_MUNI, "P-b", "self"),
        PatientLink(OTHER_MUNI, "C-b", "child", "2024-10"),
        PatientLink(OTHER_MUNI, "D-b", "child", "2021-03"),
        PatientLink(OTHER_MUNI, "X-b", "child", None),
    ]

    def ids(link: PatientLink) -> dict[str, str]:  # every record is held here
        return {patient_id(link.municipality, link.code): link.relationship}

    def reach(municipality: str, code: str) -> set[str]:
        return launch_reach(patient_id(municipality, code), links, ids)

    def pid(municipality: str, code: str) -> str:
        return patient_id(municipality, code)

    assert reach(MUNI, "P-a") == {pid(MUNI, "P-a"), pid(OTHER_MUNI, "P-b")}
    assert reach(MUNI, "C-a") == {pid(MUNI, "C-a"), pid(OTHER_MUNI, "C-b")}
    assert reach(OTHER_MUNI, "D-b") == {pid(OTHER_MUNI, "D-b"), pid(MUNI, "D-a")}
    # A child without a known birth month is only ever the chosen record itself.
    assert reach(OTHER_MUNI, "X-b") == {pid(OTHER_MUNI, "X-b")}
    # A record that is not the person's (any more) opens nothing.
    assert launch_reach(pid(MUNI, "someone-else"), links, ids) == set()
