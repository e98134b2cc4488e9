"""Birth dates are indexed by calendar month (indexing.whole_months): a dump of the index holds
no exact birth date, `birthdate=` search matches at month precision, and the migration widens
rows written before it."""

from __future__ import annotations

from sqlalchemy import insert, select

from phr_core import migrations
from phr_core.db import Database
from phr_core.services import get_service
from phr_server.dates import parse_range
from phr_server.models import DateIndex
from tests.phr_server.conftest import World, patient, transaction


def _birth_rows(world: World) -> list[tuple[int, int]]:
    db = Database(world.settings.database_urls["fhir"])
    try:
        with db.session() as s:
            q = select(DateIndex.start_us, DateIndex.end_us).where(DateIndex.param == "birthdate")
            return [tuple(r) for r in s.execute(q)]
    finally:
        db.dispose()


def _found(world: World, query: str) -> set[str]:
    body = world.get(f"/Patient?{query}", world.connector(scope="system/*.rs")).get_json()
    assert body["resourceType"] == "Bundle", body
    return {e["resource"]["identifier"][0]["value"] for e in body.get("entry", [])}


def test_the_index_holds_the_birth_month_and_search_matches_by_month(world: World) -> None:
    bundle = transaction(
        patient("urn:uuid:a", "A", birthDate="2020-04-01"),
        patient("urn:uuid:b", "B", birthDate="2020-04-30"),
        patient("urn:uuid:c", "C", birthDate="2020-05-01"),
    )
    assert world.post(world.connector(), bundle).status_code == 200
    april = parse_range("2020-04")
    may = parse_range("2020-05")
    assert sorted(_birth_rows(world)) == [april, april, may]  # not the days
    assert _found(world, "birthdate=2020-04-01") == {"A", "B"}  # the month of that day
    assert _found(world, "birthdate=2020-04") == {"A", "B"}
    assert _found(world, "birthdate=2020") == {"A", "B", "C"}
    assert _found(world, "birthdate=ge2020-05-20") == {"C"}
    assert _found(world, "birthdate=lt2020-05-01") == {"A", "B"}
    # the served resource keeps the exact date (it is sealed in the body)
    body = world.get("/Patient", world.connector(scope="system/*.rs")).get_json()
    births = {
        e["resource"]["identifier"][0]["value"]: e["resource"]["birthDate"] for e in body["entry"]
    }
    assert births == {"A": "2020-04-01", "B": "2020-04-30", "C": "2020-05-01"}


def test_the_migration_widens_exact_birth_dates_already_indexed(world: World) -> None:
    url = world.settings.database_urls["fhir"]
    fhir = get_service("fhir")
    migrations.downgrade(fhir, url, "fhir_0004")
    db = Database(url)
    try:
        with db.session() as s:
            start, end = parse_range("2019-11-17")
            s.execute(
                insert(DateIndex),
                [
                    {"resource_type": rtype, "resource_id": "x", "param": param,
                     "start_us": start, "end_us": end}
                    for rtype, param in (("Patient", "birthdate"), ("Observation", "date"))
                ],
            )  # fmt: skip
    finally:
        db.dispose()
    migrations.upgrade(fhir, url)
    db = Database(url)
    try:
        with db.session() as s:
            rows = dict(s.execute(select(DateIndex.param, DateIndex.start_us)).all())
            ends = dict(s.execute(select(DateIndex.param, DateIndex.end_us)).all())
    finally:
        db.dispose()
    assert (rows["birthdate"], ends["birthdate"]) == parse_range("2019-11")
    assert (rows["date"], ends["date"]) == parse_range("2019-11-17")  # clinical dates stay
