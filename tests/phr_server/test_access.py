"""Access: bearer tokens from the IdP, SMART scopes, the consent grant and the person's reach
(self and children). Someone else's record looks exactly like a missing one."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from flask import Flask, jsonify

from phr_core.identifiers import patient_id, pseudonym_system
from phr_core.pairwise_ids import CLAIM
from phr_server.policy import (
    Grant,
    HttpConsentDirectory,
    PatientLink,
    parse_scope,
)
from tests.browser import live_server
from tests.phr_server.conftest import MUNI, World
from tests.phr_server.test_erase import _audit_events

FAMILY = [("P1", "self"), ("C1", "child")]


def test_parse_scope_v1_v2_and_granular() -> None:
    s = parse_scope("patient/Observation.rs")
    assert (s.context, s.type, s.perms) == ("patient", "Observation", frozenset("rs"))
    assert parse_scope("patient/Observation.read").perms == frozenset("rs")
    assert parse_scope("system/*.write").perms == frozenset("cud")
    g = parse_scope("patient/Observation.rs?category=http://x|laboratory")
    assert g.filters == (("category", "http://x|laboratory"),)
    assert parse_scope("openid") is None
    assert parse_scope("patient/Observation.sr") is None  # out of order


def test_no_or_bad_token_is_401(world: World, family: dict[str, str]) -> None:
    ref = world.path(family["urn:uuid:o1"])
    resp = world.client.get(ref)
    assert resp.status_code == 401
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    claims = {"sub": "sub-parent", "client_id": "app-1", "scope": "patient/*.rs", "grant_id": "g"}
    for bad in (
        world.token(claims, aud="http://elsewhere"),
        world.token(claims, iss="http://other-issuer"),
        world.token(claims, exp=int(time.time()) - 3600),
        "not.a.token",
    ):
        assert world.get(ref, bad).status_code == 401


def test_parent_reads_self_and_child_stranger_sees_nothing(
    world: World, family: dict[str, str]
) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    for key in ("o1", "o2", "o3", "o4", "i1", "p1", "c1"):
        assert world.get(world.path(family[f"urn:uuid:{key}"]), parent).status_code == 200, key
    stranger_resp = world.get(world.path(family["urn:uuid:o5"]), parent)
    missing = world.get("/Observation/no-such-id", parent)
    assert stranger_resp.status_code == missing.status_code == 404
    # the same answer, apart from the id named: nothing tells "exists" from "absent"
    assert stranger_resp.get_json()["issue"][0]["code"] == missing.get_json()["issue"][0]["code"]
    found = world.get("/Observation", parent).get_json()
    refs = {f"Observation/{e['resource']['id']}" for e in found["entry"]}
    assert refs == {world.ref(family[f"urn:uuid:{k}"]) for k in ("o1", "o2", "o3", "o4")}


def test_a_child_cannot_reach_the_parent(world: World, family: dict[str, str]) -> None:
    child = world.user("sub-child", codes=[("C1", "self")])
    assert world.get(world.path(family["urn:uuid:o3"]), child).status_code == 200
    assert world.get(world.path(family["urn:uuid:o1"]), child).status_code == 404
    assert world.get(world.path(family["urn:uuid:p1"]), child).status_code == 404
    everything = world.get(world.path(family["urn:uuid:p1"]) + "/$everything", child)
    assert everything.status_code == 404


def test_history_vread_and_everything_follow_the_policy(
    world: World, family: dict[str, str]
) -> None:
    stranger = world.user("sub-stranger", codes=[("S1", "self")])
    o1, p1 = world.path(family["urn:uuid:o1"]), world.path(family["urn:uuid:p1"])
    for path in (f"{o1}/_history", f"{o1}/_history/1", f"{p1}/$everything"):
        assert world.get(path, stranger).status_code == 404, path
    parent = world.user("sub-parent", codes=FAMILY)
    bundle = world.get(world.path(family["urn:uuid:c1"]) + "/$everything", parent).get_json()
    got = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    mine = {world.ref(family[f"urn:uuid:{k}"]) for k in ("c1", "o3", "o4", "i1")}
    assert {g for g in got if not g.startswith("Provenance/")} == mine
    # ... with the child's own Provenance of the load: its records alone, and the source city.
    provs = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    assert len(provs) == 1
    assert {t["reference"].split("/_history/")[0] for t in provs[0]["target"]} == mine
    assert provs[0]["agent"][1]["who"]["identifier"]["value"] == MUNI


def test_smart_launch_patient_narrows_patient_scopes(world: World, family: dict[str, str]) -> None:
    """A token naming a launch `patient` (the child the parent chose on the IdP's consent screen)
    opens that record alone; its id is the one derived from the consent service's link."""
    child = patient_id(MUNI, "C1")
    assert family["urn:uuid:c1"] == f"Patient/{child}"
    claims = json.loads(_claims(world.user("sub-parent", codes=FAMILY)))
    base = {k: claims[k] for k in ("sub", "client_id", "scope", "grant_id", CLAIM)}
    launched = world.token({**base, "patient": child})
    assert world.get(world.path(family["urn:uuid:o3"]), launched).status_code == 200
    assert (
        world.get(world.path(family["urn:uuid:o1"]), launched).status_code == 404
    )  # the parent's own
    found = world.get("/Observation", launched).get_json()
    refs = {f"Observation/{e['resource']['id']}" for e in found["entry"]}
    assert refs == {world.ref(family[f"urn:uuid:{k}"]) for k in ("o3", "o4")}
    # a launch patient outside the person's reach opens nothing at all
    elsewhere = world.token({**base, "patient": patient_id(MUNI, "S1")})
    assert world.get("/Observation", elsewhere).get_json().get("entry", []) == []
    assert world.get(world.path(family["urn:uuid:o3"]), elsewhere).status_code == 404


def test_user_scopes_do_not_reach_beyond_the_launch_patient(
    world: World, family: dict[str, str]
) -> None:
    """Issue 14, item 3 (defence in depth behind the IdP, which no longer grants apps `user/`
    scopes): a token carrying `user/` scopes and a chosen launch `patient` reads that record
    alone, never the parent's own."""
    child = patient_id(MUNI, "C1")
    scopes = "patient/Patient.rs user/Immunization.rs user/Observation.rs user/Patient.rs"
    claims = json.loads(_claims(world.user("sub-parent", codes=FAMILY, scopes=scopes)))
    base = {k: claims[k] for k in ("sub", "client_id", "scope", "grant_id")}
    launched = world.token({**base, "patient": child})
    # the app names records by its own sector's ids (pairwise ids)
    assert world.get(world.path(family["urn:uuid:o3"]), launched).status_code == 200
    assert world.get(world.path(family["urn:uuid:o1"]), launched).status_code == 404  # parent's
    found = world.get("/Observation", launched).get_json()
    refs = {f"Observation/{e['resource']['id']}" for e in found["entry"]}
    assert refs == {world.ref(family[f"urn:uuid:{k}"]) for k in ("o3", "o4")}
    patients = world.get("/Patient", launched).get_json()
    assert [f"Patient/{e['resource']['id']}" for e in patients["entry"]] == [
        world.ref(f"Patient/{child}")
    ]


def test_revoked_grant_stops_access(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    ref = world.path(family["urn:uuid:o3"])
    assert world.get(ref, parent).status_code == 200
    gid = json.loads(_claims(parent))["grant_id"]
    g = world.consent.grants[gid]
    world.consent.grants[gid] = Grant(g.id, "revoked", g.subject, g.client_id, g.scopes)
    resp = world.get(ref, parent)
    assert resp.status_code == 403
    assert resp.get_json()["issue"][0]["code"] == "forbidden"
    world.consent.grants[gid] = Grant(g.id, "active", g.subject, g.client_id, g.scopes, 1)
    assert world.get(ref, parent).status_code == 403  # expired


def test_grant_of_another_app_or_person_is_refused(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    gid = json.loads(_claims(parent))["grant_id"]
    other = world.token(
        {"sub": "sub-parent", "client_id": "app-2", "scope": "patient/*.rs", "grant_id": gid}
    )
    assert world.get(world.path(family["urn:uuid:o3"]), other).status_code == 403


def test_scopes_limit_types_and_grants_limit_scopes(world: World, family: dict[str, str]) -> None:
    obs_only = world.user("sub-parent", "patient/Observation.rs", FAMILY)
    assert world.get(world.path(family["urn:uuid:o3"]), obs_only).status_code == 200
    assert world.get(world.path(family["urn:uuid:i1"]), obs_only).status_code == 403
    assert world.get("/Immunization", obs_only).status_code == 403
    v1 = world.user("sub-parent", "patient/Immunization.read", FAMILY)
    assert world.get(world.path(family["urn:uuid:i1"]), v1).status_code == 200
    assert world.get("/Immunization", v1).status_code == 200
    # the token asks for more than the person granted: only the granted part counts
    wider = world.user("sub-parent", "patient/*.rs", FAMILY, grant_scopes="patient/Immunization.rs")
    assert world.get(world.path(family["urn:uuid:i1"]), wider).status_code == 200
    assert world.get(world.path(family["urn:uuid:o3"]), wider).status_code == 403
    read_only = world.user("sub-parent", "patient/Observation.r", FAMILY)
    assert world.get("/Observation", read_only).status_code == 403


def test_granular_category_scope_narrows_reads_and_searches(
    world: World, family: dict[str, str]
) -> None:
    cat = "http://terminology.hl7.org/CodeSystem/observation-category"
    token = world.user("sub-parent", f"patient/Observation.rs?category={cat}|vital-signs", FAMILY)
    assert world.get(world.path(family["urn:uuid:o3"]), token).status_code == 200
    assert world.get(world.path(family["urn:uuid:o4"]), token).status_code == 404  # laboratory
    found = world.get("/Observation", token).get_json()
    assert {e["resource"]["id"] for e in found["entry"]} == {
        world.ref(family[f"urn:uuid:{k}"]).split("/")[1] for k in ("o1", "o2", "o3")
    }
    lab = world.get(f"/Observation?category={cat}|laboratory", token).get_json()
    assert "entry" not in lab
    everything = world.get(world.path(family["urn:uuid:c1"]) + "/$everything", token)
    # Patient is not in the scopes: $everything needs Patient read
    assert everything.status_code == 403


def test_key_rotation_at_the_issuer_is_picked_up(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    assert world.get(world.path(family["urn:uuid:o3"]), parent).status_code == 200
    world.issuer.rotate()
    try:
        world.app.extensions["phr_verifier"].jwks.min_refetch = 0
        rotated = world.user("sub-parent", codes=FAMILY)
        assert json.loads(_header(rotated))["kid"] != json.loads(_header(parent))["kid"]
        assert world.get(world.path(family["urn:uuid:o3"]), rotated).status_code == 200
    finally:
        world.issuer.keys.pop(0)


def test_user_tokens_cannot_use_system_scopes(world: World, family: dict[str, str]) -> None:
    token = world.user("sub-parent", "system/*.rs", FAMILY)
    assert world.get(world.path(family["urn:uuid:o3"]), token).status_code == 403


def test_patient_reach_follows_consent_links(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=[("P1", "self")])
    assert world.get(world.path(family["urn:uuid:o3"]), parent).status_code == 404
    # guardianship registered in the consent service: visible after the resolver's cache
    world.consent.links["sub-parent"] = [
        PatientLink("072028", "P1", "self"),
        PatientLink("072028", "C1", "child"),
    ]
    assert world.get(world.path(family["urn:uuid:o3"]), parent).status_code == 200


# --- the HTTP consent client against the documented contract -----------------------------------


def test_http_consent_directory_contract_and_short_cache() -> None:
    state: dict[str, Any] = {"status": "active", "calls": 0, "auth": None}
    app = Flask("consent_stand_in")

    @app.get("/api/v1/grants/<gid>")
    def grant(gid: str):  # type: ignore[no-untyped-def]
        from flask import request

        state["calls"] += 1
        state["auth"] = request.headers.get("Authorization")
        if gid != "g1":
            return jsonify(error="not_found"), 404
        return jsonify(
            id="g1",
            status=state["status"],
            subject="s",
            client_id="c",
            scopes=["patient/*.rs"],
            expires_at=int(time.time()) + 60,
        )

    @app.get("/api/v1/subjects/<sub>/patients")
    def patients(sub: str):  # type: ignore[no-untyped-def]
        return jsonify(patients=[{"municipality": "072028", "code": "C1", "relationship": "child"}])

    with live_server(app) as url:
        d = HttpConsentDirectory(url, ttl=0.3, service_token=lambda: "svc-token")
        g = d.grant("g1", "user-token")
        assert g is not None and g.active() and g.scopes == ("patient/*.rs",)
        assert state["auth"] == "Bearer svc-token"
        assert d.grant("unknown", "t") is None
        assert d.patients("s", "t") == [PatientLink("072028", "C1", "child")]
        state["status"] = "revoked"
        assert d.grant("g1", "t").active()  # still cached
        time.sleep(0.35)
        assert not d.grant("g1", "t").active()  # the revocation bites once the cache expires
        assert HttpConsentDirectory(url, ttl=60).ttl <= 5


def test_consent_service_down_fails_closed(world: World, family: dict[str, str]) -> None:
    world.app.extensions["phr_consent"] = HttpConsentDirectory("http://127.0.0.1:9", timeout=0.5)
    parent = world.token(
        {"sub": "sub-parent", "client_id": "app-1", "scope": "patient/*.rs", "grant_id": "g"}
    )
    resp = world.get(world.path(family["urn:uuid:o3"]), parent)
    assert resp.status_code == 503
    assert resp.get_json()["resourceType"] == "OperationOutcome"


def test_concurrent_readers(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    errors: list[int] = []

    def work() -> None:
        c = world.app.test_client()
        for _ in range(5):
            r = c.get(
                world.path(family["urn:uuid:o3"]), headers={"Authorization": f"Bearer {parent}"}
            )
            if r.status_code != 200:
                errors.append(r.status_code)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pseudonym_system("072028").endswith("072028")


def _claims(token: str) -> str:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def _header(token: str) -> str:
    import base64

    part = token.split(".")[0]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_sealed_tokens_as_the_idp_issues_them(world: World, family: dict[str, str]) -> None:
    from phr_core.tokens import access_token_cipher, seal

    signed = world.user("sub-parent", codes=FAMILY)
    key = access_token_cipher(world.settings.secret("PHR_ACCESS_TOKEN_KEY"))
    assert world.get(world.path(family["urn:uuid:o3"]), seal(signed, key)).status_code == 200
    wrong = access_token_cipher("another-key-" + "x" * 40)
    assert world.get(world.path(family["urn:uuid:o3"]), seal(signed, wrong)).status_code == 401


def test_everything_says_when_it_was_cut(
    world: World, family: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$everything holds at most EVERYTHING_LIMIT resources of a type; reaching it adds an
    `outcome` entry naming the type, so an export is never silently incomplete."""
    import phr_server.repository as repository

    parent = world.user("sub-parent", codes=FAMILY)
    path = world.path(family["urn:uuid:p1"]) + "/$everything"
    whole = world.get(path, parent).get_json()
    assert all(e["search"]["mode"] == "match" for e in whole["entry"])
    monkeypatch.setattr(repository, "EVERYTHING_LIMIT", 2)
    cut = world.get(path, parent).get_json()
    outcomes = [e for e in cut["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    issue = outcomes[0]["resource"]["issue"][0]
    assert issue["severity"] == "warning" and "Observation" in issue["diagnostics"]
    observations = [e for e in cut["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) == 2


def test_refusals_of_a_known_caller_are_audited(world: World, family: dict[str, str]) -> None:
    """The policy point refuses before the route runs, and the refusal is still audited as a
    failure (outcome 4) once the decision knows who asked: a type the scopes do not cover, a
    type not served here, a person's write."""
    obs_only = world.user("sub-parent", "patient/Observation.rs", FAMILY)
    before = _audit_events(world)
    assert world.get(world.path(family["urn:uuid:i1"]), obs_only).status_code == 403
    assert world.get("/Unknown", obs_only).status_code == 404
    assert (
        world.post(obs_only, {"resourceType": "Bundle", "type": "transaction"}).status_code == 403
    )
    failed = [a for i, a in _audit_events(world).items() if i not in before]
    assert sorted(a["outcome"] for a in failed) == ["4", "4", "4"]
    assert {a["subtype"][0]["code"] for a in failed} == {"read", "search-type", "transaction"}
