"""Attempt limits at the token endpoint: a client guessing secrets is slowed down, others not."""

from __future__ import annotations

from flask import Flask

from idp import limits
from tests.idp.conftest import basic


def test_token_endpoint_limits_failed_attempts_per_client(idp_app: Flask, register) -> None:
    cc = {"grant_types": ["client_credentials"], "redirect_uris": [], "scope": "system/*.write"}
    victim = register("victim", **cc)
    other = register("other", **cc)
    c = idp_app.test_client()
    data = {"grant_type": "client_credentials"}
    _, limit, _ = limits.TOKEN_ENDPOINT
    for _ in range(limit):
        assert c.post("/token", data=data, headers=basic("victim", "guess")).status_code == 401
    blocked = c.post("/token", data=data, headers=basic("victim", victim["client_secret"]))
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.get_json()["error"] == "invalid_request"
    ok = c.post("/token", data=data, headers=basic("other", other["client_secret"]))
    assert ok.status_code == 200
