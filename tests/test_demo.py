"""Demo data: loaded once per service, idempotent, and the PHR server's copy encrypted at rest."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidTag
from flask import Flask
from sqlalchemy import select

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo import DEMO_MUNICIPALITY, load_all
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
    from consent.demo import demo_parent_subject
    from phr_core.demo import DEMO_FAMILY

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
                     "ExplanationOfBenefit"}  # fmt: skip
