"""The portal's "+ services" pages against the real platform (IdP, consent service, PHR server
on loopback, the demo family loaded): records of the person and the child, the growth chart,
the vaccination schedule, the access history and the export, and what a stranger gets."""

from __future__ import annotations

import json
import re

import requests

from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import PARENT_ID as PARENT
from tests.portal import live_platform
from tests.portal.live_platform import (
    PORTAL_PAGES,
    STRANGER,
    TIMEOUT,
    Platform,
    sign_in,
)

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _get(browser: requests.Session, p: Platform, path: str, **kw: object) -> requests.Response:
    return browser.get(p.portal + path, timeout=TIMEOUT, **kw)  # type: ignore[arg-type]


def _own_title(page: str) -> str:
    """The page's one <h1>, which must be the page's own title (the start of <title>), not the
    portal's name repeated on every page."""
    headings = re.findall(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert len(headings) == 1, headings
    text = re.sub(r"<[^>]+>", "", headings[0]).strip()
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title and title.group(1).startswith(text) and text, (text, title)
    return text


def test_records_growth_schedule_history_and_export(platform: Platform) -> None:
    p = platform
    anonymous = requests.Session()
    gate = _get(anonymous, p, "/me/children", allow_redirects=False)
    assert gate.status_code == 302 and gate.headers["Location"].endswith("/auth/login")

    browser = requests.Session()
    sign_in(browser, p)
    home = _get(browser, p, "/")
    for link in ("records-link", "history-link", "export-link"):
        assert f'id="{link}"' in home.text
    assert _own_title(home.text) == "わたしの健康記録ポータル"  # the home page's title
    titles = {path: _own_title(_get(browser, p, path).text) for path in PORTAL_PAGES if path != "/"}
    assert len(set(titles.values())) == len(titles), titles  # each page its own

    children = _get(browser, p, "/me/children")
    assert children.status_code == 200
    assert children.headers["Cache-Control"] == "no-store"
    assert f'id="person-{PARENT}"' in children.text and "あなた" in children.text
    assert f'<li class="child" id="person-{CHILD}">' in children.text
    assert "女の子" in children.text and "1歳1か月" in children.text

    child = _get(browser, p, f"/me/records/{CHILD}")
    assert child.status_code == 200
    assert child.text.count("<tr>") == 18 + 14 + 2  # 18 measurements, 14 doses, 2 headers
    assert 'id="claims"' not in child.text  # no bills for the child
    assert "体重" in child.text and "B型肝炎" in child.text and "2回目" in child.text
    parent = _get(browser, p, f"/me/records/{PARENT}")
    assert "¥3,420" in parent.text and "会津デモ内科クリニック" in parent.text
    assert "収縮期血圧" in parent.text

    growth = _get(browser, p, f"/me/children/{CHILD}/growth")
    assert growth.status_code == 200
    assert growth.text.count("<svg") == 3
    assert growth.text.count('class="child-point"') == 18
    assert growth.text.count("出典：こども家庭庁「令和5年乳幼児身体発育調査」") == 3
    assert 'aria-labelledby="chart-weight-title chart-weight-desc"' in growth.text
    assert "50〜75パーセンタイル" in growth.text  # the table alternative places each point
    english = _get(browser, p, f"/me/children/{CHILD}/growth?lang=en")
    assert "Source: Children and Families Agency" in english.text
    assert "percentile" in english.text
    _get(browser, p, "/?lang=ja")

    schedule = _get(browser, p, f"/me/children/{CHILD}/vaccinations")
    assert schedule.status_code == 200
    found = re.findall(r'class="dose dose-(\w+)" id="dose-([\w-]+)"', schedule.text)
    status = {dose: state for state, dose in found}
    assert status["HepB-3"] == "done" and status["MR-1"] == "done"
    assert status["VZV-1"] == "due"  # 13 months, 30 days after MR
    assert status["PCV-4"] == "due" and status["MR-2"] == "not_yet"
    assert status["BCG-1"] == "done" and "HPV-1" in status  # a girl

    # The person's own records are not a child's: no growth chart or schedule for them.
    assert _get(browser, p, f"/me/children/{PARENT}/growth").status_code == 404

    history = _get(browser, p, "/me/history")
    assert history.status_code == 200
    items = re.findall(r'<li class="card access" id="access-([^"]+)"', history.text)
    assert len(items) == 20
    assert "このポータル" in history.text and "予防接種の記録" in history.text
    times = re.findall(r'<time datetime="([^"]+)"', history.text)
    assert times == sorted(times, reverse=True)
    older = re.search(r'id="older" class="button" href="([^"]+)"', history.text)
    assert older
    second = _get(browser, p, older.group(1).replace("&amp;", "&"))
    more = re.findall(r'<li class="card access" id="access-([^"]+)"', second.text)
    assert more and not set(more) & set(items)
    assert 'id="newer"' in second.text

    download = _get(browser, p, "/me/export/records.json", stream=True)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("application/fhir+json")
    assert "attachment" in download.headers["Content-Disposition"]
    assert "Content-Length" not in download.headers  # streamed
    bundle = json.loads(b"".join(download.iter_content(4096)))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    inner = [e["resource"] for e in bundle["entry"][:2]]
    assert [b["resourceType"] for b in inner] == ["Bundle", "Bundle"]
    # Then the access history (portal/history_export.py): every AuditEvent, all pages of it.
    history_events = [e["resource"] for e in bundle["entry"][2:]]
    assert {e["resourceType"] for e in history_events} == {"AuditEvent"}
    assert len(history_events) > len(items) + len(more)  # beyond the two pages seen above
    ids = [b["entry"][0]["resource"]["id"] for b in inner]
    assert ids == [f"{PARENT}", f"{CHILD}"]
    # Each person's Patient and records, and the Provenance of the city's load (one each).
    assert sum(len(b["entry"]) for b in inner) == (1 + 4) + (1 + 18 + 14) + 2
    for b in inner:
        types = [e["resource"]["resourceType"] for e in b["entry"]]
        assert types.count("Provenance") == 1


def test_a_stranger_sees_nobody_elses_records(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p, STRANGER)
    children = _get(browser, p, "/me/children")
    assert 'id="no-people"' in children.text and f"{CHILD}" not in children.text
    for path in (f"/me/records/{CHILD}", f"/me/children/{CHILD}/growth",
                 f"/me/children/{CHILD}/vaccinations"):  # fmt: skip
        resp = _get(browser, p, path)
        assert resp.status_code == 404 and 'role="alert"' in resp.text, path
    bundle = json.loads(_get(browser, p, "/me/export/records.json").content)
    assert bundle["entry"] == []
    history = _get(browser, p, "/me/history")
    assert 'id="no-history"' in history.text
