"""The platform's own portal reads with the person's authority and no consent grant: its
tokens carry `phr_first_party: true` (only the IdP's signature vouches for it), and the policy
point lets them read and search, nothing else, and only the person's own and children's
Patients."""

from __future__ import annotations

import json

from phr_server.policy import PatientLink
from tests.phr_server.conftest import MUNI, World, observation, transaction

FAMILY = [("P1", "self"), ("C1", "child")]
PORTAL_SCOPE = "openid offline_access user/*.rs"


def portal_token(world: World, sub: str, **over: object) -> str:
    claims = {"sub": sub, "client_id": "phr-portal", "scope": PORTAL_SCOPE, "phr_first_party": True}
    return world.token({**claims, **over})


def test_portal_reads_the_person_and_children_only(world: World, family: dict[str, str]) -> None:
    world.consent.links["sub-parent"] = [PatientLink(MUNI, c, r) for c, r in FAMILY]
    token = portal_token(world, "sub-parent")
    patients = world.get("/Patient", token).get_json()
    assert {f"Patient/{e['resource']['id']}" for e in patients["entry"]} == {
        family["urn:uuid:p1"],
        family["urn:uuid:c1"],
    }
    for key in ("o1", "o3", "i1"):
        assert world.get("/" + family[f"urn:uuid:{key}"], token).status_code == 200, key
    stranger = world.get("/" + family["urn:uuid:o5"], token)
    assert stranger.status_code == 404  # someone else's record looks missing
    everything = world.get(f"/{family['urn:uuid:c1']}/$everything", token)
    assert everything.status_code == 200
    assert world.get(f"/{family['urn:uuid:s1']}/$everything", token).status_code == 404
    # Each read is audited as the portal's, for the person.
    audit = world.get("/AuditEvent?_sort=-date", token).get_json()
    clients = {
        a["who"]["identifier"]["value"]
        for e in audit["entry"]
        for a in e["resource"]["agent"]
        if a["who"]["identifier"]["system"].endswith("oauth-client")
    }
    assert "phr-portal" in clients  # (the connector that wrote them appears too)


def test_a_person_without_links_sees_nothing(world: World, family: dict[str, str]) -> None:
    token = portal_token(world, "sub-nobody")
    assert world.get("/Patient", token).get_json().get("entry", []) == []
    assert world.get("/" + family["urn:uuid:p1"], token).status_code == 404


def test_portal_tokens_never_write(world: World, family: dict[str, str]) -> None:
    world.consent.links["sub-parent"] = [PatientLink(MUNI, c, r) for c, r in FAMILY]
    bundle = transaction(observation("urn:uuid:x", family["urn:uuid:p1"], "w-new", value=1.0))
    for scope in (PORTAL_SCOPE, "user/*.cruds", "system/*.write", "patient/*.*"):
        resp = world.post(portal_token(world, "sub-parent", scope=scope), bundle)
        assert resp.status_code == 403, (scope, resp.get_json())
        assert resp.get_json()["resourceType"] == "OperationOutcome"
    # Even with a write scope, the first-party rule keeps only read and search.
    token = portal_token(world, "sub-parent", scope="user/*.cruds")
    assert world.get("/" + family["urn:uuid:o1"], token).status_code == 200


def test_only_a_true_claim_from_the_issuer_counts(world: World, family: dict[str, str]) -> None:
    world.consent.links["sub-parent"] = [PatientLink(MUNI, c, r) for c, r in FAMILY]
    # A claim that is not exactly `true` is no first-party claim: without a grant the token is
    # taken as a system token, which needs a municipality and `system/` scopes: refused.
    for value in ("true", 1, "yes"):
        resp = world.get("/Patient", portal_token(world, "sub-parent", phr_first_party=value))
        assert resp.status_code == 403, value
    # A first-party token cannot pose as a connector of a municipality either.
    resp = world.get("/Patient", portal_token(world, "sub-parent", municipality=MUNI))
    assert resp.status_code == 403
    # Signed by anyone but the IdP: refused before the policy is asked.
    from joserfc.jwk import ECKey

    forger = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(
            portal_token(world, "sub-parent").split(".")[1] + "=="
        )
    )
    forged = world.issuer.sign(claims, key=forger)
    assert world.get("/Patient", forged).status_code == 401
