"""`phr consent rotate-secret-key` (issue 20), on both databases: a person signed in to the
portal before the rotation stays signed in at a portal restarted with the new key, reads their
records with the tokens the portal sealed under the old key, and has their cookie signed again
with the new key; a pending link request's attributes survive too. After `--retire` the old key
is gone, nothing in the database opens under it, and the person is still signed in."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner
from cryptography.exceptions import InvalidTag
from flask import Flask
from sqlalchemy import select

from consent.app import ATTRIBUTE_KEY_PURPOSE, attribute_box
from consent.linkage.city_consent import consent_to_municipality
from consent.models import LinkRequest, PortalTokens
from launcher.cli import main
from phr_core.config import load_settings
from phr_core.rotating_aead import RotatingAead
from phr_server.demo_family import CHILD_ID as CHILD
from phr_server.demo_family import PARENT_ID as PARENT
from portal import phr
from portal.app import PORTAL_SESSION_COOKIE, create_app
from portal.token_store import KEY_PURPOSE
from tests.consent.conftest import ATTRIBUTES
from tests.portal import live_platform
from tests.portal.live_platform import Platform, sign_in

environ = live_platform.environ
platform = live_platform.platform
CITY = "072028"


@pytest.fixture
def restarts() -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["phr_db"].dispose()


def _restart(p: Platform, made: list[Flask]) -> Flask:
    """The portal started again on the same database, reading the (rotated) secret."""
    app = create_app(load_settings(dict(p.settings.environ)))
    app.config["TESTING"] = True
    made.append(app)
    return app


def _patients(app: Flask, cookie: str) -> set[str]:
    """The person's Patients read through the portal with the session this cookie opens."""
    with app.test_request_context("/", headers={"Cookie": f"{PORTAL_SESSION_COOKIE}={cookie}"}):
        return {pt["id"] for pt in phr.for_session().patients()}


def _resigned(app: Flask, cookie: str) -> str:
    """The cookie a portal page answers with when the browser sends `cookie`."""
    client = app.test_client()
    client.set_cookie(PORTAL_SESSION_COOKIE, cookie)
    assert client.get("/").status_code == 200
    fresh = client.get_cookie(PORTAL_SESSION_COOKIE)
    assert fresh is not None
    return fresh.value


def test_portal_sessions_and_sealed_rows_survive_a_secret_key_rotation(
    platform: Platform, restarts: list[Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = platform
    for k, v in p.settings.environ.items():
        monkeypatch.setenv(k, v)
    browser = requests.Session()
    sign_in(browser, p)
    old_cookie = browser.cookies.get(PORTAL_SESSION_COOKIE)
    family = {f"{PARENT}", f"{CHILD}"}
    with p.apps["consent"].app_context():  # type: ignore[attr-defined]
        db = p.apps["consent"].extensions["phr_db"]  # type: ignore[attr-defined]
        with db.session() as s:
            _, request = consent_to_municipality(
                s,
                attribute_box(p.settings),
                subject="phr-sub-pending",
                municipality=CITY,
                categories=["mch"],
                attributes=ATTRIBUTES,
                recorded_by="test",
            )
            assert request is not None
            request_id = request.id
    old_key = p.settings.secret("PHR_CONSENT_SECRET_KEY")

    out = CliRunner().invoke(main, ["consent", "rotate-secret-key"])
    assert out.exit_code == 0, out.output
    new_key = p.settings.secret("PHR_CONSENT_SECRET_KEY").split()[0]
    assert p.settings.secret("PHR_CONSENT_SECRET_KEY").split() == [new_key, old_key]
    rotated = _restart(p, restarts)
    assert _patients(rotated, old_cookie) == family  # old cookie, tokens sealed under old key
    new_cookie = _resigned(rotated, old_cookie)
    assert new_cookie != old_cookie

    refused = CliRunner().invoke(main, ["consent", "rotate-secret-key", "--retire"])
    assert refused.exit_code != 0 and "--force" in refused.output  # the overlap is not over
    out = CliRunner().invoke(main, ["consent", "rotate-secret-key", "--retire", "--force"])
    assert out.exit_code == 0, out.output
    assert "re-sealed 1 session(s)' stored tokens and 1 link request(s)" in out.output
    assert p.settings.secret("PHR_CONSENT_SECRET_KEY") == new_key
    retired = _restart(p, restarts)
    assert _patients(retired, new_cookie) == family  # still signed in, tokens re-sealed
    with pytest.raises(phr.SignedOut):  # a cookie never used during the overlap: sign in again
        _patients(retired, old_cookie)
    with retired.app_context():
        box = retired.extensions["consent_box"]
        with db.session() as s:
            sealed = s.get(LinkRequest, request_id).attributes
            tokens = s.scalars(select(PortalTokens)).one()
        assert box.open(request_id, sealed)["name"] == ATTRIBUTES["name"]
    # Nothing left that the old key opens.
    raw = base64.b64decode(sealed)
    with pytest.raises(InvalidTag):
        RotatingAead.of(old_key, ATTRIBUTE_KEY_PURPOSE).decrypt(
            raw[:12], raw[12:], request_id.encode()
        )
    raw = base64.b64decode(tokens.sealed)
    with pytest.raises(InvalidTag):
        RotatingAead.of(old_key, KEY_PURPOSE).decrypt(
            raw[:12], raw[12:], tokens.handle_hash.encode()
        )


def test_a_refused_retirement_drops_no_session(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link request that opens under no key held refuses `--retire`; the sessions' stored
    tokens, even unreadable ones, are all still there afterwards (the pass checks the link
    requests before it drops anything)."""
    p = platform
    for k, v in p.settings.environ.items():
        monkeypatch.setenv(k, v)
    sign_in(requests.Session(), p)
    unreadable = base64.b64encode(b"\0" * 40).decode()
    with p.apps["consent"].app_context():  # type: ignore[attr-defined]
        db = p.apps["consent"].extensions["phr_db"]  # type: ignore[attr-defined]
        with db.session() as s:
            _, request = consent_to_municipality(
                s,
                attribute_box(p.settings),
                subject="phr-sub-pending",
                municipality=CITY,
                categories=["mch"],
                attributes=ATTRIBUTES,
                recorded_by="test",
            )
            assert request is not None
            request.attributes = unreadable
            for row in s.scalars(select(PortalTokens)):
                row.sealed = unreadable
        with db.session() as s:
            sessions = len(s.scalars(select(PortalTokens)).all())
    assert sessions >= 1
    assert CliRunner().invoke(main, ["consent", "rotate-secret-key"]).exit_code == 0
    out = CliRunner().invoke(main, ["consent", "rotate-secret-key", "--retire", "--force"])
    assert out.exit_code != 0 and "link request(s) open under no key" in out.output
    with db.session() as s:
        assert len(s.scalars(select(PortalTokens)).all()) == sessions
