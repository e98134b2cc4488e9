"""Vaccination-due notices, worked out from the child's records at the PHR server (read with
the parent's own authority) by the schedule engine, when the parent opens the inbox; and the
app's view of them. The real IdP, consent service and PHR server run on loopback with the demo
family (a parent and a child of about 400 days with some vaccinations)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from consent.models import Notice
from phr_core.config import Settings
from phr_server.demo_family import CHILD_ID as CHILD
from tests.portal.live_platform import (
    STRANGER,
    TIMEOUT,
    Platform,
    platform_environ,
    running,
    sign_in,
)


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    return platform_environ(tmp_path, database_url)


@pytest.fixture
def platform(migrated: Settings) -> Iterator[Platform]:
    with running(migrated) as p:
        yield p


def _notices(p: Platform) -> list[Notice]:
    with p.apps["consent"].extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        return list(s.scalars(select(Notice).order_by(Notice.id)))


def test_due_vaccinations_become_notices_once(platform: Platform) -> None:
    p = platform
    browser = requests.Session()
    sign_in(browser, p)
    inbox = browser.get(p.portal + "/me/notices", timeout=TIMEOUT)
    assert inbox.status_code == 200
    due = [n for n in _notices(p) if n.kind == "vaccination"]
    assert due, inbox.text[:500]
    assert all(n.relationship == "child" for n in due)
    assert "お子さんの予防接種の時期です" in inbox.text
    # The schedule page and the notices agree: each noticed dose is due, overdue or close.
    schedule = browser.get(p.portal + "/me/children", timeout=TIMEOUT)
    assert schedule.status_code == 200
    # ... and a dose has one name in both: the schedule's ("1期追加"), not a bare count.
    doses = browser.get(p.portal + f"/me/children/{CHILD}/vaccinations", timeout=TIMEOUT).text
    for n in due:
        label = n.params["label"]
        assert f"{n.params['vaccine']} {label}（" in inbox.text, (n.params, inbox.text[:800])
        assert f">{label}<" in doses or f"{label}</" in doses, label
    # Opening the inbox again adds nothing: one notice per dose.
    browser.get(p.portal + "/me/notices", timeout=TIMEOUT)
    assert len([n for n in _notices(p) if n.kind == "vaccination"]) == len(due)
    english = browser.get(p.portal + "/me/notices?lang=en", timeout=TIMEOUT).text
    assert "Your child&#39;s vaccination is due" in english

    # Someone without children or links gets none.
    other = requests.Session()
    sign_in(other, p, STRANGER)
    assert "お知らせはありません" in other.get(p.portal + "/me/notices", timeout=TIMEOUT).text
