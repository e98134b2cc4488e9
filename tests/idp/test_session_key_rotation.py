"""`phr idp rotate-session-key` (issue 20): a browser signed in before the rotation stays
signed in at an IdP restarted with the new key; after `--retire` its old cookie is refused,
while a cookie signed with the new key keeps working."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask

from idp.app import create_app
from launcher.cli import main
from phr_core.config import Settings, load_settings
from tests.idp.conftest import Browser
from tests.idp.test_pairwise_and_grants import _claims, _flow

COOKIE = "phr_idp_session"


@pytest.fixture
def restarts(idp_app: Flask) -> Iterator[list[Flask]]:
    made: list[Flask] = []
    yield made
    for app in made:
        app.extensions["phr_db"].dispose()


def _restart(settings: Settings, made: list[Flask]) -> Flask:
    """A freshly started IdP on the same database, reading the (rotated) secrets."""
    app = create_app(load_settings(dict(settings.environ)))
    app.config["TESTING"] = True
    made.append(app)
    return app


def _browser_with(app: Flask, cookie: str) -> Browser:
    browser = Browser(app.test_client(), person=1)
    browser.client.set_cookie(COOKIE, cookie)
    return browser


def test_sign_ins_survive_a_session_key_rotation(
    idp_app: Flask, register, restarts: list[Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = idp_app.extensions["phr_settings"]
    for k, v in settings.environ.items():
        monkeypatch.setenv(k, v)
    rp = register("app-a")
    person = Browser(idp_app.test_client(), person=1)
    sub = _claims(_flow(idp_app, rp, person)["id_token"])["sub"]
    old_cookie = person.client.get_cookie(COOKIE).value

    assert CliRunner().invoke(main, ["idp", "rotate-session-key"]).exit_code == 0
    rotated = _restart(settings, restarts)
    # Signed in before the rotation: no sign-in page, the same person.
    still = _browser_with(rotated, old_cookie)
    assert _claims(_flow(rotated, rp, still)["id_token"])["sub"] == sub
    assert "/login" not in still.pages
    # A new sign-in gets a cookie signed with the new key.
    fresh = Browser(rotated.test_client(), person=1)
    _flow(rotated, rp, fresh)
    new_cookie = fresh.client.get_cookie(COOKIE).value

    out = CliRunner().invoke(main, ["idp", "rotate-session-key", "--retire", "--force"])
    assert out.exit_code == 0, out.output
    retired = _restart(settings, restarts)
    stale = _browser_with(retired, old_cookie)
    _flow(retired, rp, stale)
    assert "/login" in stale.pages  # the old cookie no longer opens: sign in again
    current = _browser_with(retired, new_cookie)
    _flow(retired, rp, current)
    assert "/login" not in current.pages
