"""Search in plain SQL (phr_server/search_sql.py) answers exactly what the general path, the
search built as an SQLAlchemy expression, answers: the same rows in the same order, the same
paging cursors page after page both ways, the same includes and counts, for every kind of
parameter and every shape of request; and over HTTP the same bytes, in each app's sector ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from phr_core.pairwise_ids import SectorIds
from phr_core.webapp import database
from phr_server import search, search_sql
from phr_server.policy import Access
from phr_server.repository import Page, Repository
from tests.phr_server.conftest import (
    CATEGORY,
    LOINC,
    World,
    access_shapes,
    immunization,
    observation,
    sector_ids,
    transaction,
)

FAMILY = [("P1", "self"), ("C1", "child")]
SOURCE = "urn:phr-platform:source:072028:mch"


@pytest.fixture
def records(world: World, family: dict[str, str]) -> dict[str, str]:
    """The family's records and more: equal dates (ties broken by id), other codes and
    categories, a second vaccination; 13 Observations the parent may see."""
    c1, p1 = family["urn:uuid:c1"], family["urn:uuid:p1"]
    more = transaction(
        *(
            observation(
                f"urn:uuid:m{i}",
                c1 if i % 3 else p1,
                f"m-{i}",
                code=("29463-7", "2345-7", "2339-0")[i % 3],
                category="laboratory" if i % 3 else "vital-signs",
                date=("2023-01-05", "2023-01-05", "2023-06-30T10:00:00+09:00", "2024-05-02")[i % 4],
                value=10 + i,
            )
            for i in range(9)
        ),
        immunization("urn:uuid:i2", p1, "v-p1-1", date="2023-10-01"),
    )
    resp = world.post(world.connector(), more)
    assert resp.status_code == 200, resp.get_json()
    return family


def _raw_ids(family: dict[str, str], *keys: str) -> list[str]:
    return [family[f"urn:uuid:{k}"].split("/")[1] for k in keys]


def _queries(rtype: str, family: dict[str, str]) -> list[str]:
    """Searches of `rtype` (stored ids) covering every parameter kind and control."""
    p1, c1, s1, o1, o3 = _raw_ids(family, "p1", "c1", "s1", "o1", "o3")
    if rtype == "Patient":
        return [
            "",
            "gender=female",
            "gender=male,female&_count=1",
            "birthdate=2020-04",
            "birthdate=ge1990&birthdate=lt2000",
            f"_id={p1},{c1}",
            "_sort=-_lastUpdated&_count=1",
            "identifier=urn:phr-platform:pseudonym:072028|C1",
        ]
    if rtype == "Immunization":
        return [
            "",
            f"patient={c1}",
            f"patient=Patient/{p1}&_include=Immunization:patient",
            "vaccine-code=631340QE1020&_sort=-date&_count=1",
            "status=completed&date=lt2024",
        ]
    return [
        "",
        "_count=2",
        f"patient=Patient/{c1}",
        f"subject={c1}&_count=3",
        f"patient={p1},{c1}&_sort=date&_count=4",
        f"patient={s1}",
        "code=29463-7",
        f"code={LOINC}|29463-7&_count=2&_sort=-date",
        "code=|29463-7",
        f"code={LOINC}|",
        "code=2339-0,2345-7&category=laboratory",
        f"category={CATEGORY}|laboratory&_count=2",
        "status=final&_count=5&_sort=_lastUpdated",
        "status=amended",
        f"identifier={SOURCE}|w-p1-2",
        f"_id={o1}",
        f"_id={o1},{o3},nonesuch",
        *(f"date={p}2024-03-10" for p in search.PREFIXES),
        "date=2023-01-05&_count=1",
        "date=2024-05",
        "date=ge2023-06-30T01:00:00Z&date=le2024",
        "date=sa2023-01-05,eb2023-01-01",
        "_lastUpdated=gt2020-01-01&_count=3",
        "_lastUpdated=lt2020-01-01",
        "_sort=-date&_count=3",
        "_sort=_id&_count=4",
        "_sort=-_id&_count=4",
        "_sort=-_lastUpdated&_count=6",
        "_include=Observation:patient&_count=3",
        f"_include=Observation:subject&patient={c1}&_sort=-date",
        "_total=accurate&_format=json&_summary=false&_count=7",
    ]


def _found(found: list[Any]) -> list[tuple[Any, ...]]:
    return [(f.rtype, f.id, f.version, f.last_updated, f.body) for f in found]


def _same(plain: Page, general: Page) -> None:
    assert _found(plain.matches) == _found(general.matches)
    assert sorted(_found(plain.includes)) == sorted(_found(general.includes))
    assert (plain.next_cursor, plain.prev_cursor) == (general.next_cursor, general.prev_cursor)


def _walk(
    repo: Repository, s: Any, access: Access, rtype: str, args: list[tuple[str, str]]
) -> Iterator[Page]:
    """Every page of a search on both paths, compared: forwards to the end, then back."""
    key = repo.cursor_key
    q = search.parse(rtype, args, key)
    for direction in ("next", "prev"):
        for _ in range(20):
            plain, general = repo.search(s, access, q), repo.search_expression(s, access, q)
            _same(plain, general)
            yield plain
            cursor = plain.next_cursor if direction == "next" else plain.prev_cursor
            if cursor is None:
                break
            q = search.parse(rtype, [*args, ("_cursor", cursor)], key)
        else:
            raise AssertionError("paging does not end")


def test_plain_sql_pages_are_the_general_paths_pages(world: World, records: dict[str, str]) -> None:
    """Every search, for every request shape, page after page both ways, on both paths."""
    repo: Repository = world.app.extensions["phr_repo"]
    seen = 0
    with world.app.app_context(), database().engine.connect() as s:
        for name, access in access_shapes(records).items():
            for rtype in ("Observation", "Immunization", "Patient"):
                if access.allows(rtype, "s"):
                    assert access.visible_sql(rtype, "s") is not None, name  # the plain path
                queries = _queries(rtype, records)
                if name != "parent":  # every kind for the parent; a few for the other shapes
                    queries = queries[:: 3 if name == "the city" else 6]
                for query in queries:
                    args = parse_qsl(query)
                    pages = list(_walk(repo, s, access, rtype, args))
                    seen += sum(len(p.matches) + len(p.includes) for p in pages)
                    q = search.parse(rtype, args, repo.cursor_key)
                    repo.plain_search = False
                    try:
                        general = repo.count(s, access, q)
                    finally:
                        repo.plain_search = True
                    assert repo.count(s, access, q) == general, (name, rtype, query)
    assert seen > 1000  # the comparison compared something


def _get_both(world: World, path: str, token: str) -> dict[str, Any] | None:
    """The answer of the plain path, checked to be byte for byte the general path's (None
    for a 400)."""
    repo: Repository = world.app.extensions["phr_repo"]
    plain = world.get(path, token)
    repo.plain_search = False
    try:
        general = world.get(path, token)
    finally:
        repo.plain_search = True
    assert plain.status_code == general.status_code, path
    assert plain.get_data() == general.get_data(), path
    return plain.get_json() if plain.status_code == 200 else None


def _follow(world: World, token: str, page: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    """The pages reached by following `rel` links from `page`, each compared on both paths."""
    pages = [page]
    for _ in range(20):
        url = next((ln["url"] for ln in pages[-1].get("link", []) if ln["relation"] == rel), None)
        if url is None:
            return pages
        parts = urlsplit(url)
        found = _get_both(world, f"{parts.path}?{parts.query}", token)
        assert found is not None
        pages.append(found)
    raise AssertionError("paging does not end")


@pytest.mark.parametrize("who", ["app-1", "app-2", "connector"])
def test_over_http_both_paths_answer_the_same_bytes(
    world: World, records: dict[str, str], who: str
) -> None:
    """As each kind of client names things: an app in its own sector's ids and values (two
    sectors), a connector in stored ones; next links followed to the end and
    previous links back, every page compared."""
    if who.startswith("app"):
        token = world.user("sub-parent", codes=FAMILY, client_id=who)
        ids: SectorIds | None = sector_ids(who)
    else:
        token, ids = world.connector(), None

    def out(rtype: str, rid: str) -> str:
        return rid if ids is None else ids.out(rtype, rid)

    p1, c1, o1 = _raw_ids(records, "p1", "c1", "o1")
    key = "w-p1-2" if ids is None else ids.value_out(SOURCE, "w-p1-2")
    queries = [
        "Observation?_count=3&_sort=-date",
        f"Observation?patient=Patient/{out('Patient', c1)}&_include=Observation:patient",
        f"Observation?subject={out('Patient', p1)}&_count=2",
        f"Observation?_id={out('Observation', o1)}",
        f"Observation?identifier={SOURCE}|{key}",
        "Observation?code=29463-7&date=ge2023&_count=2&_sort=_lastUpdated",
        "Observation?_summary=count&category=laboratory",
        "Immunization?_include=Immunization:patient&_count=1",
        "Patient?gender=female",
        "Observation?_revinclude=Provenance:target",  # not supported: the same 400 on both
    ]
    matched = 0
    for query in queries:
        first = _get_both(world, "/" + query, token)
        if first is None:
            continue
        pages = _follow(world, token, first, "next")
        pages += _follow(world, token, pages[-1], "previous")[1:]
        matched += sum(e["search"]["mode"] == "match" for p in pages for e in p.get("entry", []))
    assert matched >= 15


def test_a_persons_search_starts_from_the_compartment(
    world: World, records: dict[str, str], db_backend: str
) -> None:
    """On SQLite a person's search must not walk every row of the type (at a million rows
    that took 1.8 s): the plan looks the compartment up, then the rows by primary key."""
    if db_backend != "sqlite":
        return  # PostgreSQL plans the EXISTS form as a semi-join already
    access = access_shapes(records)["parent"]
    (c1,) = _raw_ids(records, "c1")
    repo: Repository = world.app.extensions["phr_repo"]
    confined = search_sql.compartments_of(access, "Observation")
    visible = access.visible_sql("Observation", "s")
    assert visible is not None
    with world.app.app_context(), database().engine.connect() as s:
        raw = s.connection.driver_connection
        assert raw is not None
        for query in ("", f"patient={c1}", f"patient={c1}&_sort=-date", "_sort=_lastUpdated"):
            q = search.parse("Observation", parse_qsl(query), repo.cursor_key)
            sql, params = search_sql.page(q, visible, confined)
            plan = " / ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "SCAN r" not in plan and "LIST SUBQUERY" in plan, (query, plan)
