"""Request limits of every service (phr_core.request_limits): a body over PHR_MAX_REQUEST_BYTES
answers 413 and a URL over PHR_MAX_URL_BYTES 414, each in the service's own error format
(OperationOutcome at the PHR server, RFC 6749 JSON at the IdP, the consent API, the connector
admin and the federation authority, a readable page at the portal), chunked bodies included;
JSON nested too deep answers 400 in that format too."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask

from launcher.cli import main
from phr_core.bounded_json import MAX_DEPTH, TooDeep, depth_exceeds, loads
from phr_core.config import ConfigError, Settings, load_settings
from phr_core.request_limits import max_url_bytes
from tests.browser import live_server
from tests.conftest import make_environ

LIMIT = 64 * 1024
URL_LIMIT = 2000


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    return make_environ(
        tmp_path,
        database_url,
        PHR_MAX_REQUEST_BYTES=str(LIMIT),
        PHR_MAX_URL_BYTES=str(URL_LIMIT),
    )


def _oauth_json(resp, status: int) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status
    body = resp.get_json()
    assert set(body) == {"error", "error_description"} and body["error_description"]


def _operation_outcome(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status
    assert resp.content_type.startswith("application/fhir+json")
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"]
    return body


def _page(resp, status: int, ja: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status
    assert resp.content_type.startswith("text/html")
    assert ja in resp.get_data(as_text=True)


BIG = b"x" * (LIMIT + 1)


def test_bodies_over_the_limit_answer_413_in_each_services_format(
    app_factory: Callable[[str], Flask],
) -> None:
    fhir = app_factory("fhir").test_client()
    out = _operation_outcome(fhir.post("/", data=BIG, content_type="application/fhir+json"), 413)
    assert out["issue"][0]["code"] == "too-long"
    idp = app_factory("idp").test_client()
    _oauth_json(
        idp.post("/token", data={"grant_type": "client_credentials", "x": BIG.decode()}), 413
    )
    _oauth_json(idp.post("/register", data=BIG, content_type="application/json"), 413)
    consent = app_factory("consent").test_client()
    _oauth_json(consent.post("/api/grants", data=BIG, content_type="application/json"), 413)
    _page(consent.post("/me/apps", data={"x": BIG.decode()}), 413, "大きすぎます")
    _oauth_json(app_factory("connector").test_client().post("/", data=BIG), 413)
    _oauth_json(app_factory("federation").test_client().post("/", data=BIG), 413)
    # just under the limit is no 413 (the PHR server reads it and finds no Bundle)
    small = fhir.post("/", data=b" " * (LIMIT - 10), content_type="application/fhir+json")
    assert small.status_code != 413


def test_a_chunked_body_without_length_is_cut_at_the_limit(
    app_factory: Callable[[str], Flask],
) -> None:
    """No Content-Length to refuse up front: the stream is read up to the limit, then 413 (the
    token endpoint reads its form before anything else)."""
    app = app_factory("idp")
    with live_server(app) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        chunks = [b"grant_type=client_credentials&x="] + [b"a" * 1024] * (4 * LIMIT // 1024)
        conn.request(
            "POST",
            "/token",
            body=iter(chunks),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
    assert resp.status == 413
    assert set(body) == {"error", "error_description"}


def test_urls_over_the_limit_answer_414_in_each_services_format(
    app_factory: Callable[[str], Flask],
) -> None:
    long_query = "?q=" + "a" * URL_LIMIT
    out = _operation_outcome(app_factory("fhir").test_client().get("/Patient" + long_query), 414)
    assert out["issue"][0]["code"] == "too-long"
    _oauth_json(app_factory("idp").test_client().get("/authorize" + long_query), 414)
    consent = app_factory("consent").test_client()
    _oauth_json(consent.get("/api/grants" + long_query), 414)
    _page(consent.get("/" + long_query), 414, "長すぎます")
    # a URL at the limit passes on to the view
    at_limit = "/Patient?q=" + "a" * (URL_LIMIT - len("/Patient?q="))
    assert app_factory("fhir").test_client().get(at_limit).status_code != 414


def test_deep_json_at_the_idp_registration_endpoint_is_an_oauth_error(
    app_factory: Callable[[str], Flask], migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp = app_factory("idp")
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    token = CliRunner().invoke(main, ["idp", "registration-token"]).output.strip()
    deep = b'{"client_name":' * 100_000 + b"1" + b"}" * 100_000
    resp = idp.test_client().post(
        "/register",
        data=deep[: LIMIT - 1] if len(deep) >= LIMIT else deep,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    _oauth_json(resp, 400)
    assert resp.get_json()["error"] == "invalid_client_metadata"


def test_the_bounded_parser_counts_levels_not_brackets_in_strings() -> None:
    def nested(n: int) -> bytes:
        return b'{"a":' * n + b"1" + b"}" * n

    assert loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(TooDeep):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(TooDeep):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(TooDeep):  # unclosed: the parser would recurse before seeing the end
        loads(b"[" * 100_000)
    # brackets and escaped quotes inside strings are text, not levels
    text = json.dumps(["[" * 500 + '\\"' + "{" * 500, {"k": "]" * 100}]).encode()
    assert not depth_exceeds(text, 2) and depth_exceeds(text, 1)
    assert loads(text) == json.loads(text)
    hidden = b'["\\\\"' + b"[" * 70 + b"]" * 70 + b"]"  # an escaped backslash ends the string
    assert depth_exceeds(hidden)
    with pytest.raises(ValueError):
        loads(b'["unterminated')


def test_limits_are_checked_at_start(tmp_path: Path) -> None:
    env = make_environ(tmp_path, "sqlite:///" + str(tmp_path / "x.db"), PHR_MAX_URL_BYTES="9000")
    with pytest.raises(ConfigError, match="PHR_MAX_URL_BYTES"):
        max_url_bytes(load_settings(env))
