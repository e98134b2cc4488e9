"""Pairwise ids at the PHR server (issue 14): an app reads and searches by its sector's ids
and values only, never sees the city's pseudonymous code or another app's ids, and the portal
and connectors keep the stored ones. The whole platform: tests/launcher/test_pairwise_ids.py."""

from __future__ import annotations

import json
import uuid

from phr_core.identifiers import pseudonym_system
from phr_core.pairwise_ids import MAX_PLAIN_ID, SectorIds, fits
from tests.phr_server.conftest import MUNI, World, observation, sector_ids, transaction
from tests.phr_server.test_first_party import portal_token

FAMILY = [("P1", "self"), ("C1", "child")]


def test_ids_are_valid_fhir_ids_bound_to_their_type_and_key() -> None:
    ids, other = SectorIds(b"k" * 64), SectorIds(b"j" * 64)
    for rid in (str(uuid.uuid4()), "o1", "A" * MAX_PLAIN_ID, "a-b.c"):
        mine = ids.out("Observation", rid)
        assert 1 <= len(mine) <= 64 and all(c.isalnum() or c in "-." for c in mine)
        assert ids.into("Observation", mine) == rid
        assert ids.into("Patient", mine) is None  # another type's id is nobody's
        assert other.into("Observation", mine) is None  # another sector's id is nobody's
        assert other.out("Observation", rid) != mine
    assert len(ids.out("Patient", str(uuid.uuid4()))) == 44
    assert not fits("x" * (MAX_PLAIN_ID + 1)) and fits(str(uuid.uuid4()))
    for junk in ("", "!", "Patient", "a" * 80, "AAAA"):
        assert ids.into("Patient", junk) is None


def test_an_app_sees_its_own_ids_and_never_the_citys_code(
    world: World, family: dict[str, str]
) -> None:
    app1 = world.user("sub-parent", codes=FAMILY, client_id="app-1")
    app2 = world.user("sub-parent", codes=FAMILY, client_id="app-2")
    c1 = family["urn:uuid:c1"]
    mine = world.ref(c1, "app-1")
    child = world.get("/" + mine, app1)
    assert child.status_code == 200
    body = child.get_json()
    assert f"Patient/{body['id']}" == mine != c1
    assert child.headers["Location"].split("/_history")[0].endswith(mine)
    (ident,) = body["identifier"]  # the city (its system) stays; its code does not
    assert ident["system"] == pseudonym_system(MUNI) and ident["value"] != "C1"
    assert sector_ids("app-1").value_in(ident["system"], ident["value"]) == "C1"
    # ... and finds the Patient by that value, not by the city's code
    found = world.get(f"/Patient?identifier={ident['system']}|{ident['value']}", app1)
    assert [e["resource"]["id"] for e in found.get_json()["entry"]] == [body["id"]]
    by_code = world.get(f"/Patient?identifier={ident['system']}|C1", app1).get_json()
    assert "entry" not in by_code
    # the same person's other app: other ids, and the first app's ids are unknown there
    theirs = world.get(world.path(c1, "app-2"), app2).get_json()
    assert theirs["id"] != body["id"] and theirs["identifier"][0]["value"] != ident["value"]
    unknown = world.get("/" + mine, app2)
    assert unknown.status_code == 404
    assert c1.split("/")[1] not in unknown.get_data(as_text=True)  # the 404 names no real id
    assert "entry" not in world.get(f"/Observation?patient={mine}", app2).get_json()
    # the portal and the connector see what is stored
    portal = world.get("/" + c1, portal_token(world, "sub-parent")).get_json()
    assert portal["identifier"][0]["value"] == "C1" and f"Patient/{portal['id']}" == c1
    assert world.get("/" + c1, world.connector()).get_json()["id"] == c1.split("/")[1]


def test_an_app_cannot_confirm_a_city_code_by_a_bare_identifier_search(
    world: World, family: dict[str, str]
) -> None:
    """`identifier=C1` (no system) matched the stored city code, so an app could confirm a code
    it learnt elsewhere. An app names the system (its values are its own per system): a bare
    value is a 400 naming `identifier`, whatever the value. The portal and connectors may."""
    app1 = world.user("sub-parent", codes=FAMILY, client_id="app-1")
    c1 = family["urn:uuid:c1"].split("/")[1]
    for query in ("identifier=C1", "identifier=nobody", "identifier=x|y,C1"):
        for rtype in ("Patient", "Observation"):
            resp = world.get(f"/{rtype}?{query}", app1)
            assert resp.status_code == 400, (rtype, query)
            (issue,) = resp.get_json()["issue"]
            assert (
                issue["expression"] == ["identifier"] and "<system>|<value>" in issue["diagnostics"]
            )
            assert "C1" not in resp.get_data(as_text=True) and c1 not in resp.get_data(as_text=True)
    # the explicit forms still work: the app's own value, `|value`, `system|`
    system = pseudonym_system(MUNI)
    mine = sector_ids("app-1").value_out(system, "C1")
    found = world.get(f"/Patient?identifier={system}|{mine}", app1).get_json()
    assert len(found["entry"]) == 1
    assert "entry" not in world.get("/Patient?identifier=|C1", app1).get_json()
    assert len(world.get(f"/Patient?identifier={system}|", app1).get_json()["entry"]) == 2
    modifier = world.get("/Patient?identifier:missing=true", app1).get_json()["issue"][0]
    assert modifier["expression"] == ["identifier:missing"]  # the modifier is what is refused
    for first_party in (portal_token(world, "sub-parent"), world.connector()):
        bare = world.get("/Patient?identifier=C1", first_party).get_json()
        assert [e["resource"]["id"] for e in bare["entry"]] == [c1]


def test_references_bundles_and_cursors_are_in_the_apps_ids(
    world: World, family: dict[str, str]
) -> None:
    app1 = world.user("sub-parent", codes=FAMILY, client_id="app-1")
    app2 = world.user("sub-parent", codes=FAMILY, client_id="app-2")
    page = world.get("/Observation?_count=2&_include=Observation:subject", app1).get_json()
    text = json.dumps(page)
    for ref in family.values():  # no stored id anywhere: resources, references, fullUrls
        assert ref.split("/")[1] not in text
    for e in page["entry"]:
        res = e["resource"]
        assert e["fullUrl"].endswith(f"/{res['resourceType']}/{res['id']}")
        if res["resourceType"] == "Observation":
            assert world.get("/" + res["subject"]["reference"], app1).status_code == 200
    nxt = next(x["url"] for x in page["link"] if x["relation"] == "next")
    path = "/" + nxt.split("://", 1)[1].split("/", 1)[1]
    assert world.get(path, app1).status_code == 200
    refused = world.get(path, app2)  # another sector cannot use (or read) the cursor
    assert refused.status_code == 400
    assert refused.get_json()["issue"][0]["expression"] == ["_cursor"]


def test_ids_too_long_to_map_are_refused_at_the_door(world: World) -> None:
    too_long = "x" * (MAX_PLAIN_ID + 1)
    entry = observation("urn:uuid:o", "Patient/p", "k")
    entry["request"] = {"method": "PUT", "url": f"Observation/{too_long}"}
    resp = world.post(world.connector(), transaction(entry))
    assert resp.status_code == 400
    issue = resp.get_json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0].request.url"] and "UUID" in issue["diagnostics"]
