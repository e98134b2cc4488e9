"""Search: the parameters of the issue, answered from the index tables, with keyset paging
that stays correct while others write, and 400s that name the bad parameter."""

from __future__ import annotations

import pytest

from tests.phr_server.conftest import (
    CATEGORY,
    LOINC,
    World,
    observation,
    sector_ids,
    transaction,
)

FAMILY = [("P1", "self"), ("C1", "child")]


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _id(family: dict[str, str], key: str) -> str:
    """The id app-1 (the `parent` token's app) knows the resource by: its sector's."""
    return sector_ids().ref_out(family[f"urn:uuid:{key}"]).split("/")[1]


@pytest.fixture
def parent(world: World) -> str:
    return world.user("sub-parent", codes=FAMILY)


def test_patient_and_subject(world: World, family: dict[str, str], parent: str) -> None:
    c1 = world.ref(family["urn:uuid:c1"])
    by_patient = world.get(f"/Observation?patient={c1}", parent).get_json()
    assert sorted(_ids(by_patient)) == sorted([_id(family, "o3"), _id(family, "o4")])
    by_subject = world.get(f"/Observation?subject={c1.split('/')[1]}", parent).get_json()
    assert sorted(_ids(by_subject)) == sorted(_ids(by_patient))
    # naming someone else's Patient finds nothing (and says nothing)
    s1 = world.ref(family["urn:uuid:s1"])
    assert _ids(world.get(f"/Observation?patient={s1}", parent).get_json()) == []
    imm = world.get(f"/Immunization?patient={c1}", parent).get_json()
    assert _ids(imm) == [_id(family, "i1")]


def test_tokens(world: World, family: dict[str, str], parent: str) -> None:
    weight = {_id(family, k) for k in ("o1", "o2", "o3")}
    for q in ("code=29463-7", f"code={LOINC}|29463-7", "code=29463-7,0000-0"):
        assert set(_ids(world.get(f"/Observation?{q}", parent).get_json())) == weight, q
    assert _ids(world.get("/Observation?code=http://other|29463-7", parent).get_json()) == []
    assert _ids(world.get("/Observation?code=|29463-7", parent).get_json()) == []
    lab = world.get(f"/Observation?category={CATEGORY}|laboratory", parent).get_json()
    assert _ids(lab) == [_id(family, "o4")]
    assert len(_ids(world.get(f"/Observation?category={CATEGORY}|", parent).get_json())) == 4
    assert len(_ids(world.get("/Observation?status=final", parent).get_json())) == 4
    assert _ids(world.get("/Observation?status=amended", parent).get_json()) == []
    vac = world.get("/Immunization?vaccine-code=631340QE1020", parent).get_json()
    assert _ids(vac) == [_id(family, "i1")]
    # the app knows the record's source key by its sector's value only
    system = "urn:phr-platform:source:072028:mch"
    mine = sector_ids().value_out(system, "w-p1-2")
    ident = world.get(f"/Observation?identifier={system}|{mine}", parent)
    assert _ids(ident.get_json()) == [_id(family, "o2")]
    stored = world.get(f"/Observation?identifier={system}|w-p1-2", parent)
    assert _ids(stored.get_json()) == []
    # AND across repeats
    both = world.get("/Observation?code=29463-7&category=laboratory", parent).get_json()
    assert _ids(both) == []
    assert _ids(world.get(f"/Observation?_id={_id(family, 'o1')}", parent).get_json()) == [
        _id(family, "o1")
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date=2024-03-10", {"o2"}),
        ("date=2024-03", {"o2"}),
        ("date=2024", {"o1", "o2", "o3", "o4"}),
        ("date=eq2024-05", {"o3", "o4"}),
        ("date=ne2024-05", {"o1", "o2"}),
        ("date=lt2024-03-10", {"o1"}),
        ("date=le2024-03-10", {"o1", "o2"}),
        ("date=gt2024-05-01", {"o4"}),
        ("date=ge2024-05-01", {"o3", "o4"}),
        ("date=sa2024-03-10", {"o3", "o4"}),
        ("date=eb2024-03-10", {"o1"}),
        ("date=ge2024-02&date=lt2024-05-02", {"o2", "o3"}),
        ("date=2024-05-01T00:00:00%2B09:00", set()),  # an instant inside a day is not "eq" it
        ("date=ge2024-04-30T15:00:00Z&date=lt2024-05-01T15:00:00Z", {"o3"}),  # the JST day in UTC
    ],
)
def test_dates(
    world: World, family: dict[str, str], parent: str, query: str, expected: set
) -> None:
    got = set(_ids(world.get(f"/Observation?{query}", parent).get_json()))
    assert got == {_id(family, k) for k in expected}


def test_last_updated(world: World, family: dict[str, str], parent: str) -> None:
    assert len(_ids(world.get("/Observation?_lastUpdated=gt2020-01-01", parent).get_json())) == 4
    assert _ids(world.get("/Observation?_lastUpdated=lt2020-01-01", parent).get_json()) == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("colour=red", "colour"),
        ("date=yesterday", "date"),
        ("date=xx2024", "date"),
        ("_count=0", "_count"),
        ("_count=abc", "_count"),
        ("_sort=status", "_sort"),
        ("_include=Observation:performer", "_include"),
        ("code:text=weight", "code:text"),
        ("_summary=text", "_summary"),
        ("patient=Group/1", "patient"),
        ("_cursor=forged", "_cursor"),
        ("code=", "code"),
    ],
)
def test_bad_parameters_are_named(world: World, parent: str, query: str, param: str) -> None:
    resp = world.get(f"/Observation?{query}", parent)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == [param]
    assert param.split(":")[0] in body["issue"][0]["diagnostics"]


def test_sort_by_date(world: World, family: dict[str, str], parent: str) -> None:
    asc = _ids(world.get("/Observation?_sort=date", parent).get_json())
    assert asc == [_id(family, k) for k in ("o1", "o2", "o3", "o4")]
    desc = _ids(world.get("/Observation?_sort=-date", parent).get_json())
    assert desc == list(reversed(asc))


def test_summary_count_counts_only_what_may_be_seen(
    world: World, family: dict[str, str], parent: str
) -> None:
    body = world.get("/Observation?_summary=count", parent).get_json()
    assert body["total"] == 4 and "entry" not in body
    child = world.user("sub-child", codes=[("C1", "self")])
    assert world.get("/Observation?_summary=count", child).get_json()["total"] == 2


def test_include_subject(world: World, family: dict[str, str], parent: str) -> None:
    body = world.get("/Observation?code=29463-7&_include=Observation:subject", parent).get_json()
    included = {e["resource"]["id"] for e in body["entry"] if e["search"]["mode"] == "include"}
    assert included == {_id(family, "p1"), _id(family, "c1")}
    only_obs = world.user("sub-parent", "patient/Observation.rs", FAMILY)
    body = world.get("/Observation?_include=Observation:patient", only_obs).get_json()
    assert all(e["search"]["mode"] == "match" for e in body["entry"])  # no Patient scope


def _walk(world: World, token: str, url: str) -> tuple[list[str], list[dict]]:
    ids: list[str] = []
    pages = []
    while url:
        page = world.get(url.split("://", 1)[1].split("/", 1)[1].join(["/", ""]), token).get_json()
        pages.append(page)
        ids += _ids(page)
        url = next((ln["url"] for ln in page["link"] if ln["relation"] == "next"), "")
    return ids, pages


def test_paging_next_and_previous_stay_put_under_writes(
    world: World, family: dict[str, str]
) -> None:
    connector = world.connector()
    many = transaction(
        *(
            observation(
                f"urn:uuid:m{i}", family["urn:uuid:c1"], f"m-{i}", date=f"2023-01-{i + 1:02d}"
            )
            for i in range(11)
        )
    )
    assert world.post(connector, many).status_code == 200
    parent = world.user("sub-parent", codes=FAMILY)
    first = world.get("/Observation?_count=5&_sort=date", parent).get_json()
    assert len(_ids(first)) == 5
    assert not any(ln["relation"] == "previous" for ln in first["link"])
    next_url = next(ln["url"] for ln in first["link"] if ln["relation"] == "next")
    # meanwhile a connector adds records that sort before and after the boundary
    more = transaction(
        observation("urn:uuid:e", family["urn:uuid:c1"], "early", date="2022-01-01"),
        observation("urn:uuid:l", family["urn:uuid:c1"], "late", date="2030-01-01"),
    )
    assert world.post(connector, more).status_code == 200
    ids, pages = _walk(world, parent, next_url)
    everything = _ids(first) + ids
    assert len(everything) == len(set(everything))  # nothing twice
    assert len(everything) == 15 + 1  # 11 + 4 family, plus the late one (after the boundary)
    # previous from page 2 gives page 1 back exactly
    prev_url = next(ln["url"] for ln in pages[0]["link"] if ln["relation"] == "previous")
    back = world.get("/" + prev_url.split("/", 3)[3], parent).get_json()
    assert _ids(back) == _ids(first)


def test_everything(world: World, family: dict[str, str], parent: str) -> None:
    body = world.get(world.path(family["urn:uuid:p1"]) + "/$everything", parent).get_json()
    got = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body["entry"]}
    records = {g for g in got if not g.startswith("Provenance/")}
    assert records == {world.ref(family[f"urn:uuid:{k}"]) for k in ("p1", "o1", "o2")}
    assert len(got - records) == 1  # the Provenance of the load that wrote them


def test_everything_served_is_valid_fhir(world: World, family: dict[str, str], parent: str) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from phr_server.validation import validate

    bundle_model = get_fhir_model_class("Bundle")
    o3 = world.ref(family["urn:uuid:o3"])
    for path in (
        "/Observation?_include=Observation:patient",
        f"/{o3}/_history",
        world.path(family["urn:uuid:c1"]) + "/$everything",
        "/AuditEvent",
        "/Observation?_summary=count",
    ):
        body = world.get(path, parent).get_json()
        bundle_model.model_validate(body)
        for e in body.get("entry", []):
            validate(e["resource"])  # our stricter checks too
    validate(world.get("/" + o3, parent).get_json())


# --- values the parser accepts answer a result or a 400, never a 500 (issues 14.7, 21) -------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date=le9999", {"o1", "o2", "o3", "o4"}),  # a valid FHIR date: the whole year 9999
        ("date=9999-12-31", set()),
        ("date=ge9999-12-31T23:59:59.999999-14:00", set()),
        ("date=gt0001", {"o1", "o2", "o3", "o4"}),
        ("date=sa0001-01-01T00:00:00%2B14:00", {"o1", "o2", "o3", "o4"}),
        ("_lastUpdated=9999-12-31", set()),
        ("_lastUpdated=lt9999", {"o1", "o2", "o3", "o4"}),
    ],
)
def test_dates_at_the_ends_of_the_calendar(
    world: World, family: dict[str, str], parent: str, query: str, expected: set
) -> None:
    resp = world.get(f"/Observation?{query}", parent)
    assert resp.status_code == 200, resp.get_json()
    assert set(_ids(resp.get_json())) == {_id(family, k) for k in expected}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("_count=%C2%B2", "_count"),  # ² (str.isdigit() is true; int() refuses it)
        ("_count=%E2%91%A0", "_count"),  # ①
        ("_count=%EF%BC%95", "_count"),  # full-width ５
        ("_count=" + "9" * 5000, "_count"),  # more digits than int() converts
        ("date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94", "date"),  # full-width ２０２４
        ("date=2024-02-30", "date"),
        ("date=2024-05-01T10:00%2B15:00", "date"),  # no such time zone
        ("date=0000", "date"),
        ("code=a%00b", "code"),  # PostgreSQL text cannot hold NUL
        ("_id=%00", "_id"),
    ],
)
def test_values_the_parser_refuses_are_named(
    world: World, parent: str, query: str, param: str
) -> None:
    resp = world.get(f"/Observation?{query}", parent)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == [param]


def test_generated_search_values_never_answer_500(
    world: World, family: dict[str, str], parent: str
) -> None:
    """Any value of any parameter answers 200 or a 400 OperationOutcome."""
    from urllib.parse import urlencode

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    prefix = st.sampled_from(["", "eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"])
    year = st.one_of(
        st.sampled_from(["0000", "0001", "9999", "2024"]), st.from_regex(r"\A[0-9]{4}\Z")
    )
    rest = st.one_of(
        st.sampled_from(["", "-12-31", "-12-31T23:59:59-14:00", "-01-01T00:00+14:00"]),
        st.from_regex(
            r"\A(-[0-9]{2}(-[0-9]{2}"
            r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?\Z"
        ),
    )
    date_like = st.builds(lambda p, y, r: p + y + r, prefix, year, rest)
    names = st.sampled_from(
        ["date", "_lastUpdated", "_count", "code", "_id", "patient", "_sort", "status", "_summary"]
    )
    odd_digits = st.text(alphabet="0123456789²①５٣\x00|,-", max_size=6)
    values = st.one_of(date_like, odd_digits, st.text(max_size=40))

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(st.tuples(names, values), min_size=1, max_size=3))
    def check(params: list[tuple[str, str]]) -> None:
        resp = world.get("/Observation?" + urlencode(params), parent)
        assert resp.status_code in (200, 400), (params, resp.status_code)
        if resp.status_code == 400:
            assert resp.get_json()["resourceType"] == "OperationOutcome"

    check()


@pytest.mark.parametrize("vid", ["%C2%B2", "%E2%91%A0", "%EF%BC%91", "9" * 30])
def test_version_numbers_are_ascii_digits(
    world: World, family: dict[str, str], parent: str, vid: str
) -> None:
    """`/_history/²` answered 500 (`isdigit()` is true, `int()` refuses it), as did a number
    too large for the database."""
    path = world.path(family["urn:uuid:o1"])  # as the app names it (pairwise ids)
    resp = world.get(f"{path}/_history/{vid}", parent)
    assert resp.status_code == 404
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    assert world.get(f"{path}/_history/1", parent).status_code == 200
