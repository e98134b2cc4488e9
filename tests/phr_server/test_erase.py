"""`POST /$erase`: the consent service erases a person's Patient compartments; afterwards
nothing of them is readable and their rows are gone, while AuditEvents stay."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from phr_core.identifiers import pseudonym_system
from phr_server.models import (
    Compartment,
    DateIndex,
    ResourceVersion,
    StoredResource,
    TokenIndex,
)
from tests.idp.test_dpop import Holder
from tests.phr_server.conftest import MUNI, World, immunization, patient, transaction


def _erase_token(world: World, **over: Any) -> str:
    cid = world.settings.option("PHR_CONSENT_SERVICE_CLIENT_ID")
    return world.token({"sub": cid, "client_id": cid, "scope": "phr/erase", **over})


def _params(*codes: str, muni: str = MUNI) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueIdentifier": {"system": pseudonym_system(muni), "value": c}}
            for c in codes
        ],
    }


def _counts(resp: Any) -> dict[str, int]:
    return {p["name"]: p["valueInteger"] for p in resp.get_json()["parameter"]}


def _rows(world: World, rtype: str, rid: str) -> dict[str, int]:
    db = world.app.extensions["phr_db"]
    with db.session() as s:

        def n(model: Any, tcol: Any, icol: Any) -> int:
            q = select(func.count()).select_from(model).where(tcol == rtype, icol == rid)
            return s.scalar(q) or 0

        return {
            "resource": n(StoredResource, StoredResource.resource_type, StoredResource.id),
            "versions": n(ResourceVersion, ResourceVersion.resource_type, ResourceVersion.id),
            "tokens": n(TokenIndex, TokenIndex.resource_type, TokenIndex.resource_id),
            "dates": n(DateIndex, DateIndex.resource_type, DateIndex.resource_id),
            "compartment": n(Compartment, Compartment.resource_type, Compartment.resource_id),
        }


def _audit_events(world: World) -> dict[str, dict[str, Any]]:
    """Every stored AuditEvent by id, decrypted."""
    keyring = world.app.extensions["phr_keyring"]
    with world.app.extensions["phr_db"].session() as s:
        rows = s.scalars(select(StoredResource).where(StoredResource.resource_type == "AuditEvent"))
        return {
            r.id: json.loads(keyring.open(s, r.key_id, r.resource_type, r.id, r.version_id, r.body))
            for r in rows
        }


def test_erase_removes_a_person_and_keeps_the_child_and_the_audit_trail(
    world: World, family: dict[str, str]
) -> None:
    parent = world.user("sub-parent", codes=[("P1", "self"), ("C1", "child")])
    p1, o1 = family["urn:uuid:p1"], family["urn:uuid:o1"]
    assert world.get(world.path(p1), parent).status_code == 200
    assert world.get(world.path(o1), parent).status_code == 200
    # A corrected Patient (a second version: history rows to erase too) and a vaccination.
    again = transaction(
        patient("urn:uuid:p1", "P1", gender="female", birthDate="1990-01-02"),
        immunization("urn:uuid:i9", "urn:uuid:p1", "v-p1-1"),
    )
    assert world.post(world.connector(), again).status_code == 200
    assert _rows(world, *p1.split("/"))["resource"] == 1
    audits_before = _audit_events(world)

    resp = world.post(_erase_token(world), _params("P1"), path="/$erase")
    assert resp.status_code == 200, resp.get_json()
    counts = _counts(resp)
    assert counts["patients"] == 1
    assert counts["resources"] == 4  # the Patient, two weights, one vaccination
    assert counts["versions"] >= 5  # the Patient has two versions

    # Nothing of the parent is readable any more, by id or by search.
    assert world.get(world.path(p1), parent).status_code == 404
    assert world.get(world.path(o1), parent).status_code == 404
    found = world.get("/Observation?patient=" + world.ref(p1), parent).get_json()
    assert found.get("entry", []) == []
    conn = world.connector(scope="system/*.read")
    by_code = world.get(f"/Patient?identifier={pseudonym_system(MUNI)}|P1", conn).get_json()
    assert by_code.get("entry", []) == []
    # ... and the rows are gone from every table: body, history, indexes, compartment.
    for ref in (p1, o1, family["urn:uuid:o2"]):
        assert _rows(world, *ref.split("/")) == dict.fromkeys(
            ("resource", "versions", "tokens", "dates", "compartment"), 0
        ), ref

    # The child (another compartment) is untouched and still the guardian's to read.
    c1 = family["urn:uuid:c1"]
    assert world.get(world.path(c1), parent).status_code == 200
    assert world.get(world.path(family["urn:uuid:i1"]), parent).status_code == 200
    stranger = world.get(f"/{family['urn:uuid:s1']}", world.connector(scope="system/*.read"))
    assert stranger.status_code == 200

    # The audit trail stays, with one more event for the erase: action D, the erased Patient
    # named by id, the counts, and no resource body.
    audits = _audit_events(world)
    assert set(audits_before) <= set(audits)
    erases = [a for a in audits.values() if a["action"] == "D"]
    assert len(erases) == 1
    erase_event = json.dumps(erases[0])
    assert p1 in erase_event and "$erase" in erase_event
    assert "1990-01-02" not in erase_event and "female" not in erase_event
    with world.app.extensions["phr_db"].session() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(Compartment)
                .where(Compartment.patient_id == p1.split("/")[1])
                .where(Compartment.resource_type != "AuditEvent")
            )
            == 0
        )


def test_erase_of_parent_and_child_together_and_a_retry(
    world: World, family: dict[str, str]
) -> None:
    token = _erase_token(world)
    resp = world.post(token, _params("P1", "C1"), path="/$erase")
    assert resp.status_code == 200
    assert _counts(resp)["patients"] == 2
    assert _counts(resp)["resources"] == 7  # P1 + 2 weights, C1 + 2 + 1
    for urn in ("p1", "c1", "o1", "o2", "o3", "o4", "i1"):
        assert _rows(world, *family[f"urn:uuid:{urn}"].split("/"))["resource"] == 0
    assert _rows(world, *family["urn:uuid:s1"].split("/"))["resource"] == 1
    # Erasing again (a retry after a lost answer) succeeds and changes nothing.
    retry = world.post(token, _params("P1", "C1"), path="/$erase")
    assert retry.status_code == 200 and _counts(retry)["patients"] == 0


def test_only_the_consent_service_may_erase(world: World, family: dict[str, str]) -> None:
    body = _params("P1")
    refused = {
        "connector": world.connector(scope="system/*.write phr/erase"),
        "person": world.user("sub-parent", scopes="patient/*.rs phr/erase", codes=[("P1", "self")]),
        "no scope": _erase_token(world, scope="system/*.read"),
        "another client": world.token({"sub": "other", "client_id": "other", "scope": "phr/erase"}),
    }
    for name, token in refused.items():
        resp = world.post(token, body, path="/$erase")
        assert resp.status_code == 403, name
        assert resp.get_json()["resourceType"] == "OperationOutcome"
    anonymous = world.client.post("/$erase", json=body)
    assert anonymous.status_code == 401
    assert _rows(world, *family["urn:uuid:p1"].split("/"))["resource"] == 1


def test_bad_erase_requests_are_named(world: World, family: dict[str, str]) -> None:
    token = _erase_token(world)
    cases = [
        ({"resourceType": "Bundle"}, "Parameters"),
        ({"resourceType": "Parameters", "parameter": []}, "at least one patient"),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "patient", "valueString": "x"}]},
            "valueIdentifier",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "patient", "valueIdentifier": {"system": "urn:x", "value": "P1"}}
                ],
            },
            "pseudonym",
        ),
    ]
    for body, words in cases:
        resp = world.post(token, body, path="/$erase")
        assert resp.status_code == 400, body
        diag = resp.get_json()["issue"][0]["diagnostics"]
        assert words in diag, diag
    assert _rows(world, *family["urn:uuid:p1"].split("/"))["resource"] == 1


def test_erase_takes_a_dpop_bound_token_only_with_its_proof(
    world: World, family: dict[str, str]
) -> None:
    """`$erase` authenticates like every route (phr_server.authn): a token bound to the consent
    service's key works with a fresh proof from that key, and not without one."""
    holder = Holder()
    token = _erase_token(world, cnf={"jkt": holder.jkt})
    url = world.settings.urls["fhir"].rstrip("/") + "/$erase"
    body = json.dumps(_params("P1"))

    def post(auth: str, proof: str | None = None):  # type: ignore[no-untyped-def]
        headers = {"Authorization": auth, "Content-Type": "application/fhir+json"}
        if proof is not None:
            headers["DPoP"] = proof
        return world.client.post("/$erase", data=body, headers=headers)

    for resp, error in (
        (post(f"DPoP {token}"), "invalid_dpop_proof"),  # no proof
        (post(f"Bearer {token}"), "invalid_token"),  # a bound token sent as a bearer token
        (post(f"DPoP {token}", Holder().proof("POST", url, token)), "invalid_dpop_proof"),
    ):
        assert resp.status_code == 401, resp.get_json()
        assert f'error="{error}"' in resp.headers["WWW-Authenticate"]
        assert resp.headers["WWW-Authenticate"].startswith("DPoP ")
    assert _rows(world, *family["urn:uuid:p1"].split("/"))["resource"] == 1

    ok = post(f"DPoP {token}", holder.proof("POST", url, token))
    assert ok.status_code == 200, ok.get_json()
    assert _counts(ok)["patients"] == 1
    assert _rows(world, *family["urn:uuid:p1"].split("/"))["resource"] == 0
