"""What a sign-in costs the database: SQL statements and commits per authorization code flow
and per refresh, counted (behaviour, not timing). bench/idp.md explains why they matter: on
this stack each statement and transaction is a large share of a flow's CPU. A change that
adds some must raise these limits on purpose, with its reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event

from tests.idp.conftest import Browser, basic, code_request, exchange, pkce_pair

# The flow of bench/idp.py: authorize, sign-in page and form, consent page and form (prompt=
# consent), both returns to /authorize/resume, token, userinfo. Measured 26 and 9 (both
# databases) when these limits were set; 39 statements before (issue 19).
CODE_FLOW_STATEMENTS = 26
CODE_FLOW_COMMITS = 9
REFRESH_STATEMENTS = 6  # attempt limit, token, claim, access token record, new refresh token
REFRESH_COMMITS = 1


@contextmanager
def counted(app: Flask) -> Iterator[Counter[str]]:
    engine = app.extensions["phr_db"].engine
    seen: Counter[str] = Counter()

    def statement(*_args: object) -> None:
        seen["statements"] += 1

    def commit(*_args: object) -> None:
        seen["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


def flow(app: Flask, rp: dict, person: int) -> dict:
    browser = Browser(app.test_client(), person=person)
    verifier, challenge = pkce_pair()
    back = browser.authorize(
        **code_request(rp, challenge, scope="openid offline_access", prompt="consent")
    )
    assert browser.pages == ["/login", "/consent"]
    tokens = exchange(app, rp, back["code"][0], verifier).get_json()
    info = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert info.status_code == 200
    return tokens


def test_statements_per_code_flow_and_refresh(idp_app: Flask, register) -> None:
    rp = register(scope="openid offline_access")
    flow(idp_app, rp, person=1)  # the demo citizen and the caches exist from here on
    with counted(idp_app) as seen:
        tokens = flow(idp_app, rp, person=1)
    assert seen["statements"] <= CODE_FLOW_STATEMENTS, seen
    assert seen["commits"] <= CODE_FLOW_COMMITS, seen

    with counted(idp_app) as seen:
        resp = idp_app.test_client().post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic(rp["client_id"], rp["client_secret"]),
        )
    assert resp.status_code == 200, resp.get_json()
    assert seen["statements"] <= REFRESH_STATEMENTS, seen
    assert seen["commits"] <= REFRESH_COMMITS, seen
