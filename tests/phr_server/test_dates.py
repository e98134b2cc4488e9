"""FHIR dates as ranges: every value the pattern accepts gives a range or a ValueError, even at
the ends of the calendar where `datetime` arithmetic overflows (issue 21: `9999-12-31` once
raised OverflowError and answered 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phr_server.dates import JST, parse_range, to_us, value_range
from tests.phr_server.conftest import (
    World,
    ids_by_identifier,
    immunization,
    observation,
    patient,
    transaction,
)

DATES = st.from_regex(
    r"\A[0-9]{4}(-[0-9]{2}(-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?\Z"
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(DATES, st.text(max_size=30)))
def test_any_value_gives_a_range_or_a_value_error(value: str) -> None:
    try:
        start, end = parse_range(value)
    except ValueError:
        return
    assert start < end


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_instants_agree_with_datetime(moment: datetime, offset_min: int) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    sign = "+" if offset_min >= 0 else "-"
    hh, mm = divmod(abs(offset_min), 60)
    text = f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S")
    text += f".{moment.microsecond:06d}{sign}{hh:02d}:{mm:02d}"
    expected = to_us(moment.replace(tzinfo=tz))
    assert parse_range(text) == (expected, expected + 1)


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("9999", datetime(9999, 1, 1, tzinfo=JST), datetime(9999, 12, 31, 15, tzinfo=UTC)),
        ("9999-12", datetime(9999, 12, 1, tzinfo=JST), datetime(9999, 12, 31, 15, tzinfo=UTC)),
        ("9999-12-31", datetime(9999, 12, 31, tzinfo=JST), datetime(9999, 12, 31, 15, tzinfo=UTC)),
        ("2024-02", datetime(2024, 2, 1, tzinfo=JST), datetime(2024, 3, 1, tzinfo=JST)),
        ("2024-05-01T09:00", datetime(2024, 5, 1, 9, tzinfo=JST), None),
    ],
)
def test_ends_of_the_calendar(value: str, start: datetime, end: datetime | None) -> None:
    s, e = parse_range(value)
    assert s == to_us(start)
    assert e == (to_us(end) if end else s + 60_000_000)


@pytest.mark.parametrize(
    "value",
    ["２０２４", "2024-13", "2024-02-30", "2024-01-01T24:00", "2024-01-01T10:00+15:00", "0000"],
)
def test_not_dates(value: str) -> None:
    with pytest.raises(ValueError):
        parse_range(value)
    assert value_range(value) is None


def test_resource_values_at_the_ends_never_raise() -> None:
    assert value_range("9999-12-31T23:59:59.999999-14:00") is not None
    assert value_range(datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))))
    assert value_range(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) is not None


# --- at the server's door: a date it accepts is stored and indexed, or refused with a 400 ----


def test_open_end_dates_are_stored_indexed_and_found(world: World) -> None:
    """`9999-12-31` (an "open end" in many exports) once made date indexing overflow and the
    whole transaction answer 500."""
    bundle = transaction(
        patient("urn:uuid:p", "P9"),
        observation("urn:uuid:o", "urn:uuid:p", "w-9999", date="9999-12-31"),
        observation("urn:uuid:q", "urn:uuid:p", "w-west", date="9999-12-31T23:59:59.999999-14:00"),
        immunization("urn:uuid:i", "urn:uuid:p", "v-9999", date="9999-12-31"),
    )
    resp = world.post(world.connector(), bundle)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    ids = ids_by_identifier(resp.get_json(), bundle)
    reader = world.connector(scope="system/*.read")
    found = world.get("/Observation?date=9999-12-31", reader).get_json()
    assert {e["resource"]["id"] for e in found["entry"]} == {ids["urn:uuid:o"].split("/")[1]}
    late = world.get("/Observation?date=gt9999-12-31&_sort=-date", reader).get_json()
    assert [e["resource"]["id"] for e in late["entry"]] == [ids["urn:uuid:q"].split("/")[1]]
    imm = world.get("/Immunization?date=le9999", reader).get_json()
    assert len(imm["entry"]) == 1


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=st.one_of(DATES, st.sampled_from(["9999-12-31", "0001-01-01T00:00:00+14:00"])))
def test_any_written_date_is_stored_or_refused_at_its_element(world: World, value: str) -> None:
    bundle = transaction(
        patient("urn:uuid:p", "P1"),
        observation("urn:uuid:o", "urn:uuid:p", "w-1", date=value),
    )
    resp = world.post(world.connector(), bundle)
    assert resp.status_code in (200, 400), (value, resp.status_code)
    if resp.status_code == 400:
        body = resp.get_json()
        assert body["resourceType"] == "OperationOutcome"
        where = {x for i in body["issue"] for x in i.get("expression", [])}
        assert any("effectiveDateTime" in x for x in where), (value, body)


def test_unindexable_dates_are_named_by_element() -> None:
    from phr_server.indexing import unindexable_dates

    obs = {"resourceType": "Observation", "effectiveDateTime": "2024-01-01T10:00:00+15:00"}
    assert unindexable_dates(obs) == ["effectiveDateTime"]
    enc = {"resourceType": "Encounter", "period": {"start": "2024-02-30", "end": "9999-12-31"}}
    assert unindexable_dates(enc) == ["period.start"]
    assert unindexable_dates({**enc, "period": {"end": "9999-12-31T23:59:60Z"}}) == []
