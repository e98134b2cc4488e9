"""JSON nested 100,000 deep at the consent API is a 400 in the API's RFC 6749 shape, not a
RecursionError and a 500 (phr_core.bounded_json, Flask's JSON provider in every service)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.consent.conftest import Tokens


def test_deep_json_is_an_invalid_request(client: FlaskClient, tokens: Tokens) -> None:
    deep = b'{"subject":' * 100_000 + b'"x"' + b"}" * 100_000
    r = client.post(
        "/api/v1/grants", data=deep, content_type="application/json", headers=tokens.idp
    )
    assert r.status_code == 400
    assert r.json["error"] == "invalid_request" and r.json["error_description"]
