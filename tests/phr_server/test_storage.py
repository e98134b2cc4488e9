"""Storage details: format-1 rows (before envelope encryption) still open and are re-sealed,
with their index rows, by `rotate-keys --reseal`; bodies are bound to their row."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import insert, select

from phr_core.db import Database
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM
from phr_server.keys import rotate
from phr_server.models import ResourceVersion, StoredResource
from phr_server.storage import Keyring, ResourceCipher
from tests.phr_server.conftest import MUNI, World

R = StoredResource.__table__
V = ResourceVersion.__table__


def test_format_1_rows_are_read_and_resealed(world: World) -> None:
    master = world.settings.secret("PHR_FHIR_DATA_KEY")
    org = {
        "resourceType": "Organization",
        "id": "legacy-org",
        "identifier": [{"system": MUNICIPALITY_CODE_SYSTEM, "value": MUNI}],
        "name": "old row",
    }
    sealed = ResourceCipher(master).seal(org, 1)
    db = Database(world.settings.database_urls["fhir"])
    try:
        with db.session() as s:
            values = dict(resource_type="Organization", id="legacy-org", version_id=1, body=sealed)
            from phr_server.models import utcnow

            s.execute(insert(R).values(**values, last_updated=utcnow(), updated_us=0, sort_us=0))
            s.execute(insert(V).values(**values, last_updated=utcnow()))
        token = world.user("sub-x", "patient/Organization.rs", [])
        legacy = world.path("Organization/legacy-org")
        assert world.get(legacy, token).get_json()["name"] == "old row"
        # not in the index yet
        found = world.get(f"/Organization?identifier={MUNICIPALITY_CODE_SYSTEM}|{MUNI}", token)
        assert "entry" not in found.get_json()
        result = rotate(db, Keyring(master), new_data_keys=False, reseal=True)
        assert result.resealed >= 1
        with db.session() as s:
            row = s.execute(select(R).where(R.c.id == "legacy-org")).one()
        assert row.key_id is not None and bytes(row.body)[:1] == b"\x02"
        found = world.get(f"/Organization?identifier={MUNICIPALITY_CODE_SYSTEM}|{MUNI}", token)
        assert [e["resource"]["name"] for e in found.get_json()["entry"]] == ["old row"]
    finally:
        db.dispose()


def test_sealed_body_is_bound_to_its_row(world: World) -> None:
    db = Database(world.settings.database_urls["fhir"])
    keyring = Keyring(world.settings.secret("PHR_FHIR_DATA_KEY"))
    try:
        with db.session() as s:
            key_id = keyring.current(s, MUNI)
            blob = keyring.seal(s, key_id, "Observation", "a", 1, b'{"x":1}')
            assert keyring.open(s, key_id, "Observation", "a", 1, blob) == b'{"x":1}'
            with pytest.raises(InvalidTag):
                keyring.open(s, key_id, "Observation", "b", 1, blob)
            with pytest.raises(InvalidTag):
                keyring.open(s, key_id, "Observation", "a", 2, blob)
            other = keyring.current(s, "131016")  # another city's data key
            assert other != key_id
            with pytest.raises(InvalidTag):
                keyring.open(s, other, "Observation", "a", 1, blob)
    finally:
        db.dispose()
