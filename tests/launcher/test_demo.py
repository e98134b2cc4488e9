"""Demo data: loaded once per service, idempotent, and the PHR server's copy encrypted at rest."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidTag
from flask import Flask
from sqlalchemy import select

from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_MUNICIPALITY
from phr_server.models import StoredResource
from phr_server.storage import Keyring


def test_demo_load_is_idempotent(migrated: Settings) -> None:
    first = load_all(migrated)
    assert first["consent"] == 1 and first["fhir"] == 1 and first["idp"] >= 1
    assert load_all(migrated) == {name: 0 for name in first}


def test_stored_resources_are_sealed_and_bound_to_their_row(migrated: Settings) -> None:
    load_all(migrated)
    db = Database(migrated.database_urls["fhir"])
    try:
        with db.session() as s:
            row = s.scalars(select(StoredResource)).one()
    finally:
        db.dispose()
    assert DEMO_MUNICIPALITY.code.encode() not in row.body
    assert b"Organization" not in row.body
    assert DEMO_MUNICIPALITY.name_ja.encode() not in row.body

    db = Database(migrated.database_urls["fhir"])
    keyring = Keyring(migrated.secret("PHR_FHIR_DATA_KEY"))
    try:
        with db.session() as s:
            body = keyring.open(s, row.key_id, row.resource_type, row.id, row.version_id, row.body)
            org = json.loads(body)
            assert org["resourceType"] == "Organization"
            assert org["identifier"][0]["value"] == DEMO_MUNICIPALITY.code
            with pytest.raises(InvalidTag):  # the body under another version does not open
                keyring.open(s, row.key_id, row.resource_type, row.id, row.version_id + 1, row.body)
            with pytest.raises(InvalidTag):  # nor under another id
                keyring.open(s, row.key_id, row.resource_type, "other", row.version_id, row.body)
            with pytest.raises(KeyError):  # nor with another master key
                Keyring("another master key").open(
                    s, row.key_id, row.resource_type, row.id, row.version_id, row.body
                )
    finally:
        db.dispose()


def test_portal_lists_demo_municipality(
    migrated: Settings, app_factory: Callable[[str], Flask]
) -> None:
    client = app_factory("consent").test_client()
    assert DEMO_MUNICIPALITY.name_ja not in client.get("/").get_data(as_text=True)
    load_all(migrated)
    assert DEMO_MUNICIPALITY.name_ja in client.get("/").get_data(as_text=True)
    english = client.get("/?lang=en").get_data(as_text=True)
    assert DEMO_MUNICIPALITY.name_en in english


def test_demo_family_links_a_parent_and_child_with_records(migrated: Settings) -> None:
    """`phr dev run` loads the demo family: citizen 1 is linked to the demo city with a child,
    and the PHR server holds their (synthetic) records; loading twice adds nothing."""
    from consent import linkage
    from launcher.demo import demo_parent_subject
    from phr_core.demo_data import DEMO_FAMILY

    first = load_all(migrated, family=True)
    assert first["consent"] == 2 and first["fhir"] > 20
    assert load_all(migrated, family=True) == {name: 0 for name in first}
    db = Database(migrated.database_urls["consent"])
    try:
        with db.session() as s:
            reach = linkage.patients(s, demo_parent_subject(migrated))
    finally:
        db.dispose()
    assert [(code, rel) for _, code, rel, _ in reach] == [
        (DEMO_FAMILY.parent_code, "self"),
        (DEMO_FAMILY.child_code, "child"),
    ]
    db = Database(migrated.database_urls["fhir"])
    try:
        with db.session() as s:
            types = set(s.scalars(select(StoredResource.resource_type)))
    finally:
        db.dispose()
    assert types == {"Organization", "Patient", "Observation", "Immunization",
                     "ExplanationOfBenefit", "Provenance"}  # fmt: skip


def test_second_city_has_its_own_server_keys_and_the_moved_family(migrated: Settings) -> None:
    """`phr dev run`'s second city: its PHR server's own database and master data key, its
    clients at the IdP, the anchor vouching for it (only for its own municipality), and the
    family that moved there linked under that city's codes, with records from after the move
    whose Provenance names the city."""
    from consent import linkage
    from federation.authority import store
    from idp.models import Client
    from launcher import second_city
    from launcher.demo import demo_parent_subject
    from phr_core.demo_data import DEMO_FAMILY, MOVED_FAMILY, SECOND_MUNICIPALITY

    load_all(migrated, family=True)
    added = second_city.load_demo(migrated, family=True)
    assert added["fhir"] > 5 and added["consent"] == 2 and added["idp"] == 2
    assert added["federation"] == 2
    assert set(second_city.load_demo(migrated, family=True).values()) == {0}
    city = second_city.settings_of(migrated)
    assert city is not None and city.database_urls["fhir"] != migrated.database_urls["fhir"]
    code = SECOND_MUNICIPALITY.code

    db = Database(city.database_urls["fhir"])
    try:
        with db.session() as s:
            rows = list(s.scalars(select(StoredResource)))
            assert {r.municipality for r in rows} == {code}
            mine, first_city = (
                Keyring(city.secret("PHR_FHIR_DATA_KEY")),
                Keyring(migrated.secret("PHR_FHIR_DATA_KEY")),
            )
            assert city.secret("PHR_FHIR_DATA_KEY") != migrated.secret("PHR_FHIR_DATA_KEY")
            bodies = {}
            for r in rows:
                bodies[(r.resource_type, r.id)] = json.loads(
                    mine.open(s, r.key_id, r.resource_type, r.id, r.version_id, r.body)
                )
            with pytest.raises(KeyError):  # the first city's master key opens none of it
                first_city.open(s, r.key_id, r.resource_type, r.id, r.version_id, r.body)
    finally:
        db.dispose()
    prov = bodies[("Provenance", f"demo-provenance-{code}")]
    custodian = next(a for a in prov["agent"] if a["type"]["coding"][0]["code"] == "custodian")
    assert custodian["who"]["identifier"]["value"] == code  # the city, as connector loads say it
    assert ("Organization", f"municipality-{code}") in bodies
    targets = {t["reference"] for t in prov["target"]}
    assert targets == {f"{t}/{i}" for t, i in bodies if t not in ("Provenance", "Organization")}
    assert any(t == "Immunization" for t, _ in bodies)

    db = Database(migrated.database_urls["consent"])
    try:
        with db.session() as s:
            reach = linkage.patients(s, demo_parent_subject(migrated))
    finally:
        db.dispose()
    assert sorted((m, c, rel) for m, c, rel, _ in reach) == sorted([
        (DEMO_MUNICIPALITY.code, DEMO_FAMILY.parent_code, "self"),
        (DEMO_MUNICIPALITY.code, DEMO_FAMILY.child_code, "child"),
        (code, MOVED_FAMILY.parent_code, "self"),
        (code, MOVED_FAMILY.child_code, "child"),
    ])  # fmt: skip

    db = Database(migrated.database_urls["idp"])
    try:
        with db.session() as s:
            connector = s.get(Client, f"connector-{code}")
            assert connector is not None and s.get(Client, f"phr-server-{code}") is not None
            assert connector.client_metadata["phr_municipality"] == code
    finally:
        db.dispose()
    db = Database(migrated.database_urls["federation"])
    try:
        with db.session() as s:
            row = store.active(s, city.urls["fhir"])
            assert row is not None
            assert row.metadata_policy["oauth_resource"]["phr_municipalities"] == {
                "subset_of": [code]
            }
            first = store.active(s, migrated.urls["fhir"])
            assert first.metadata_policy["oauth_resource"]["phr_municipalities"] == {
                "subset_of": [DEMO_MUNICIPALITY.code]
            }
    finally:
        db.dispose()
