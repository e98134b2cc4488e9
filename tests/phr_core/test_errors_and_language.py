"""Errors come in each service's own format, and the portal speaks Japanese first."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask


def test_fhir_errors_are_operation_outcomes(app_factory: Callable[[str], Flask]) -> None:
    resp = app_factory("fhir").test_client().get("/Patient/does-not-exist/nothing")
    assert resp.status_code == 404
    assert resp.mimetype == "application/fhir+json"
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
    assert body["issue"][0]["diagnostics"]


def test_json_services_answer_errors_as_json(app_factory: Callable[[str], Flask]) -> None:
    for name in ("idp", "connector"):
        client = app_factory(name).test_client()
        resp = client.get("/nowhere")
        assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"
        resp = client.post("/healthz")
        assert resp.status_code == 405 and resp.get_json()["error"] == "method_not_allowed"


def test_portal_defaults_to_japanese_and_follows_the_browser(
    app_factory: Callable[[str], Flask],
) -> None:
    client = app_factory("consent").test_client()
    ja = client.get("/")
    assert ja.headers["Content-Language"] == "ja"
    assert "わたしの健康記録ポータル" in ja.get_data(as_text=True)
    en = app_factory("consent").test_client().get("/", headers={"Accept-Language": "en-US,en"})
    assert en.headers["Content-Language"] == "en"
    assert "My Health Record Portal" in en.get_data(as_text=True)


def test_portal_language_choice_sticks(app_factory: Callable[[str], Flask]) -> None:
    client = app_factory("consent").test_client()
    assert client.get("/?lang=en").headers["Content-Language"] == "en"
    assert client.get("/").headers["Content-Language"] == "en"  # from the cookie
    assert client.get("/?lang=ja").headers["Content-Language"] == "ja"
    assert client.get("/").headers["Content-Language"] == "ja"


def test_portal_errors_are_readable_pages(app_factory: Callable[[str], Flask]) -> None:
    client = app_factory("consent").test_client()
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "ページが見つかりません" in page and "Traceback" not in page
    resp = client.get("/no/such/page?lang=en")
    assert "This page does not exist." in resp.get_data(as_text=True)


def test_security_headers(app_factory: Callable[[str], Flask]) -> None:
    resp = app_factory("consent").test_client().get("/")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
