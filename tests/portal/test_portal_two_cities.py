"""A family that moved from city A to city B: the portal reads both cities' PHR servers (found
through the federation, a token for each from one sign-in) and shows one view per person,
each record naming its city; a server that is down costs only its city's records; deleting
the account erases the records on both servers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from consent.models import Notice
from phr_core.config import Settings
from phr_server.demo_family import CHILD_ID as CHILD_A
from phr_server.demo_family import PARENT_ID as PARENT_A
from portal.auth import token_store
from tests.federation.conftest import Federation, federation  # noqa: F401 (fixture)
from tests.portal.live_platform import (
    TIMEOUT,
    Platform,
    form_value,
    platform_environ,
    running,
    sign_in,
    sign_in_page,
)
from tests.portal.test_portal_phr import Portal
from tests.portal.two_cities import (
    CHILD_B_ID,
    CITY_A,
    CITY_B,
    PARENT_B_ID,
    TwoCities,
    second_city,
    second_database,
    server_b_environ,
    stored_count,
)


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    return platform_environ(tmp_path, database_url)


@pytest.fixture
def city_b_database(db_backend: str, tmp_path: Path) -> Iterator[str]:
    yield from second_database(db_backend, tmp_path)


@pytest.fixture
def two(
    migrated: Settings,
    environ: dict[str, str],
    federation: Federation,  # noqa: F811 (the fixture imported above)
    city_b_database: str,
) -> Iterator[TwoCities]:
    with (
        running(migrated) as p,
        second_city(p, federation, server_b_environ(environ, city_b_database)) as t,
    ):
        yield t


def _get(browser: requests.Session, p: Platform, path: str, **kw: object) -> requests.Response:
    return browser.get(p.portal + path, timeout=TIMEOUT, **kw)  # type: ignore[arg-type]


def _cells(html: str, table: str) -> list[list[str]]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in rows]  # fmt: skip


def test_one_view_of_a_family_that_moved(two: TwoCities) -> None:
    p = two.platform
    browser = requests.Session()
    sign_in(browser, p)

    children = _get(browser, p, "/me/children")
    assert children.status_code == 200, children.text[:300]
    # One child, though two cities hold records of her; the person is one person too.
    assert children.text.count('<li class="child"') == 1
    assert (
        f'id="person-{PARENT_A}"' in children.text or f'id="person-{PARENT_B_ID}"' in children.text
    )
    assert "会津若松市（デモ）" in children.text and "福島市（デモ）" in children.text
    child_id = CHILD_A if f'id="person-{CHILD_A}"' in children.text else CHILD_B_ID

    record = _get(browser, p, f"/me/records/{child_id}")
    assert record.status_code == 200 and 'id="unreachable"' not in record.text
    doses = _cells(record.text, "immunizations")
    assert len(doses) == 14 + 1  # city A's 14 doses and B's varicella
    assert {d[-1] for d in doses} == {"会津若松市（デモ）", "福島市（デモ）"}
    assert [d[-1] for d in doses if d[1] == "水痘"] == ["福島市（デモ）"]
    weights = _cells(record.text, "observations")
    assert len(weights) == 18 + 1 and weights[0][-1] == "福島市（デモ）"  # B's is the newest
    english = _get(browser, p, f"/me/records/{child_id}?lang=en")
    assert "Fukushima (demo)" in english.text and "Aizuwakamatsu (demo)" in english.text
    _get(browser, p, "/?lang=ja")
    # The same page whichever city's Patient id names her.
    other = CHILD_B_ID if child_id == CHILD_A else CHILD_A
    assert _get(browser, p, f"/me/records/{other}").text.count("<tr>") == record.text.count("<tr>")

    # The growth chart and the schedule count both cities' records.
    growth = _get(browser, p, f"/me/children/{child_id}/growth")
    assert growth.text.count('class="child-point"') == 18 + 1
    schedule = _get(browser, p, f"/me/children/{child_id}/vaccinations")
    status = dict(
        (dose, state)
        for state, dose in re.findall(r'class="dose dose-(\w+)" id="dose-([\w-]+)"', schedule.text)
    )
    assert status["VZV-1"] == "done" and status["MR-1"] == "done"  # B's and A's

    # The access history holds both servers' AuditEvents (the reads just made), newest first.
    history = _get(browser, p, "/me/history")
    times = re.findall(r'<time datetime="([^"]+)"', history.text)
    assert times == sorted(times, reverse=True) and len(times) > 20

    # One download, every Patient of both servers.
    download = _get(browser, p, "/me/export/records.json", stream=True)
    bundle = json.loads(b"".join(download.iter_content(4096)))
    inner = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Bundle"]
    patients = sorted(b["entry"][0]["resource"]["id"] for b in inner)
    # Then the access history of both servers (portal/history_export.py), nothing else.
    events = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Bundle"]
    assert {e["resource"]["resourceType"] for e in events} == {"AuditEvent"}
    assert {e["fullUrl"].rsplit("/AuditEvent/", 1)[0] for e in events} == {p.fhir, two.server_b}
    assert patients == sorted([PARENT_A, CHILD_A, PARENT_B_ID, CHILD_B_ID])
    # Every load came with its Provenance, which names the city (the custodian): A's demo
    # load and B's connector load, one in each of the four Patients' records.
    custodian = {
        b["entry"][0]["resource"]["id"]: p["agent"][1]["who"]["identifier"]["value"]
        for b in inner
        for p in (e["resource"] for e in b["entry"])
        if p["resourceType"] == "Provenance"
    }
    assert custodian == {PARENT_A: CITY_A, CHILD_A: CITY_A, PARENT_B_ID: CITY_B, CHILD_B_ID: CITY_B}

    # The arrivals callback of B's server reached the consent service: a notice for B's load.
    with p.apps["consent"].extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        kinds = {(n.kind, n.municipality) for n in s.scalars(select(Notice))}
    assert ("records", CITY_B) in kinds

    # B's server is down: A's records are still shown, and the page says which city is missing.
    two.stop_b()
    listed = _get(browser, p, "/me/children")
    assert listed.status_code == 200 and 'id="unreachable"' in listed.text
    assert f'<li class="child" id="person-{CHILD_A}">' in listed.text  # A's Patient names her
    down = _get(browser, p, f"/me/records/{CHILD_A}")
    assert down.status_code == 200
    notice = down.text.split('id="unreachable"', 1)[-1].split("</p>", 1)[0]  # the first notice
    assert 'id="unreachable"' in down.text and "福島市（デモ）" in notice
    if child_id == CHILD_B_ID:  # a link naming her by B's Patient: a readable "try later"
        later = _get(browser, p, f"/me/records/{CHILD_B_ID}")
        assert later.status_code == 503 and "PHRサーバ" in later.text
    assert len(_cells(down.text, "immunizations")) == 14
    down_en = _get(browser, p, "/me/children?lang=en")
    assert down_en.status_code == 200 and "could not be read just now" in down_en.text
    assert "Fukushima (demo)" in down_en.text
    assert _get(browser, p, "/me/history").status_code == 200
    partial = json.loads(_get(browser, p, "/me/export/records.json").content)
    outcomes = [
        e["resource"]
        for e in partial["entry"]
        if e["resource"]["resourceType"] == "OperationOutcome"
    ]
    said = [o["issue"][0]["diagnostics"] for o in outcomes]
    records_missing = [d for d in said if "access history" not in d]
    assert len(records_missing) == 2 and "Fukushima (demo)" in records_missing[0]
    # B's access history is said missing too (portal/history_export.py), once.
    assert len(said) == 3 and "access history kept for Fukushima (demo)" in said[2]


def test_one_sign_in_a_token_per_server(two: TwoCities) -> None:
    p = two.platform
    browser = requests.Session()
    sign_in(browser, p)
    portal = Portal(p, browser)
    _get(browser, p, "/me/children")
    with portal.context():
        from portal.token_store import _hash

        store = token_store()
        with store.db.session() as s:
            from consent.models import PortalTokens

            row = s.get(PortalTokens, _hash(portal.handle()))
            tokens = store._open(row.handle_hash, row.sealed)
        # The sign-in's token for A, one for B from a refresh with resource=B.
        assert set(tokens.others) == {two.server_b}
        assert tokens.others[two.server_b][0] != tokens.access_token
    # B's server accepts only its own token: A's is refused there.
    refused = requests.get(
        two.server_b + "/Patient",
        headers={"Authorization": "Bearer " + tokens.access_token},
        timeout=TIMEOUT,
    )
    assert refused.status_code == 401
    mine = requests.get(
        two.server_b + "/Patient",
        headers={"Authorization": "Bearer " + tokens.others[two.server_b][0]},
        timeout=TIMEOUT,
    ).json()
    assert sorted(e["resource"]["id"] for e in mine["entry"]) == sorted([PARENT_B_ID, CHILD_B_ID])


def test_deleting_the_account_erases_both_cities_records(two: TwoCities) -> None:
    p = two.platform
    browser = requests.Session()
    sign_in(browser, p)
    assert stored_count(two.settings_b) == 3
    page = _get(browser, p, "/me/delete")
    csrf = form_value(page.text, "csrf")
    done = browser.post(
        p.portal + "/me/delete",
        data={"csrf": csrf, "understood": "1", "children": "1"},
        timeout=TIMEOUT,
    )
    assert done.status_code == 200, done.text[:500]
    assert stored_count(two.settings_b) == 0
    with p.apps["fhir"].extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        from phr_server.models import StoredResource

        left = s.scalars(
            select(StoredResource.id).where(StoredResource.resource_type == "Patient")
        ).all()
    assert PARENT_A not in left and CHILD_A not in left


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_merged_view_on_a_phone(two: TwoCities) -> None:
    """Headless Chromium at 360×740: the child's one records page with both cities' rows,
    then city B down and its readable notice; nothing wider than the screen."""
    from tests.browser import browser_page
    from tests.portal.live_platform import PARENT

    p = two.platform
    shots = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        sign_in_page(page, p, "/auth/login?next=/", PARENT, land="/")
        page.click("#records-link")
        page.wait_for_url(p.portal + "/me/children")
        assert page.locator("#children .child").count() == 1
        assert "福島市（デモ）" in page.locator("#children .child .cities").inner_text()
        page.click("#children .child a.button >> nth=0")
        page.wait_for_url(p.portal + "/me/records/*")
        cities = page.locator("#immunizations td.city").all_inner_texts()
        assert len(cities) == 15 and set(cities) == {"会津若松市（デモ）", "福島市（デモ）"}
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(shots / "portal-two-cities-360.png"), full_page=True)

        two.stop_b()
        page.goto(p.portal + f"/me/records/{CHILD_A}")
        notice = page.locator("#unreachable")
        assert notice.is_visible() and "福島市（デモ）" in notice.inner_text()
        assert page.locator("#immunizations td.city").count() == 14
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(shots / "portal-two-cities-down-360.png"), full_page=True)
