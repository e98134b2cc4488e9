"""Deleting the account, as a parent does it against the real platform (IdP, portal, PHR server
on loopback): the delete page offers the records and the access history first, the deletion
erases the person at the IdP too, the browser's IdP sign-in ends (RP-initiated logout) and the
portal's home then says what was done; signing in again needs the IdP's sign-in page."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from idp.endpoints.interaction import demo_person_id
from idp.models import LoginSession, Person
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, TIMEOUT, Platform, form_value, sign_in

environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def test_deleting_the_account_signs_out_at_the_idp_and_forgets_the_person(
    platform: Platform,
) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    assert browser.get(p.portal + "/me/history", timeout=TIMEOUT).status_code == 200
    person_id = demo_person_id(int(PARENT))
    idp_db = p.apps["idp"].extensions["phr_db"]  # type: ignore[attr-defined]
    with idp_db.session() as s:
        assert s.get(Person, person_id) is not None

    start = browser.get(p.portal + "/me/delete", timeout=TIMEOUT)
    assert 'id="delete-download"' in start.text and "/me/export/records.json" in start.text
    assert "保存期間" in start.text and "自動では削除されません" in start.text
    saved = json.loads(browser.get(p.portal + "/me/export/records.json", timeout=TIMEOUT).content)
    kinds = [e["resource"]["resourceType"] for e in saved["entry"]]
    assert "AuditEvent" in kinds and kinds[0] == "Bundle"

    csrf = form_value(start.text, "csrf")
    review = browser.post(
        p.portal + "/me/delete/review", data={"csrf": csrf, "children": "1"}, timeout=TIMEOUT
    )
    assert review.status_code == 200
    done = browser.post(
        p.portal + "/me/delete",
        data={"csrf": csrf, "children": "1", "understood": "1"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    # The browser is sent to the IdP's end_session_endpoint with the ID token as the hint...
    assert done.status_code == 303, done.text[:300]
    logout = urlsplit(done.headers["Location"])
    assert f"{logout.scheme}://{logout.netloc}{logout.path}" == p.idp + "/logout"
    asked = parse_qs(logout.query)
    assert asked["post_logout_redirect_uri"] == [p.portal + "/"] and asked["id_token_hint"]
    back = browser.get(done.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    # ...and, the person being gone there, straight back to the portal's home, which says so.
    assert back.status_code == 302 and back.headers["Location"].startswith(p.portal + "/")
    home = browser.get(back.headers["Location"], timeout=TIMEOUT)
    assert 'id="deleted"' in home.text and 'id="deleted-idp"' in home.text
    assert 'id="deleted"' not in browser.get(p.portal + "/", timeout=TIMEOUT).text  # once

    with idp_db.session() as s:
        assert s.get(Person, person_id) is None
        assert (
            s.scalars(select(LoginSession).where(LoginSession.person_id == person_id)).first()
            is None
        )
    # The next click on "sign in" shows the IdP's sign-in page: nobody is signed in there.
    again = browser.get(p.portal + "/auth/login", allow_redirects=False, timeout=TIMEOUT)
    authorize = browser.get(again.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
    assert urlsplit(authorize.headers["Location"]).path == "/login"
