"""Issue 20, "logs an operator reads": one JSON event per line (phr_core.logs) with time,
level, service, event and request id; the request id accepted or made, answered, and sent on
to the next service; access lines that name the route, not the path, and blank query values."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from phr_core import logs, outbound, request_ids
from phr_core.config import ConfigError, load_settings
from phr_core.webapp import build_app, settings
from tests.conftest import make_environ


class Lines(logging.Handler):
    """Every record, formatted as the platform writes it."""

    def __init__(self, fmt: str = "json") -> None:
        super().__init__()
        self.setFormatter(logs.formatter(fmt))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def captured() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _app(tmp_path: Path, service: str = "connector", **extra: str) -> Flask:
    environ = make_environ(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}", **extra)
    app = build_app(service, load_settings(environ), [])

    @app.get("/things/<thing_id>")
    def thing(thing_id: str) -> str:
        logging.getLogger("phr.test").warning("looked at a thing")
        return "ok"

    @app.get("/relay")
    def relay() -> str:  # calls the other service, as the portal calls the PHR server
        target = app.config["RELAY_TO"]
        return outbound.for_settings(settings()).get(target + "/things/x").body.decode()

    return app


def _access(events: list[dict], route: str) -> dict:
    return next(e for e in events if e["logger"] == logs.ACCESS_LOGGER and e["route"] == route)


def test_one_json_event_per_line_with_the_request_id(tmp_path: Path, captured: Lines) -> None:
    client = _app(tmp_path).test_client()
    resp = client.get("/things/person-4711?code=SECRET-CODE&state=S3&_count=5")
    rid = resp.headers[request_ids.HEADER]
    assert request_ids.SAFE.fullmatch(rid)
    app_line, access = captured.events()[-2:]
    assert app_line["event"] == "looked at a thing" and app_line["level"] == "WARNING"
    assert app_line["request_id"] == rid and app_line["service"] == "connector"
    assert access["request_id"] == rid and access["event"] == "request"
    assert access["route"] == "/things/<thing_id>" and access["status"] == 200
    assert access["query"] == "code=-&state=-&_count=5"
    assert set(access) >= {"ts", "level", "service", "method", "duration_ms", "bytes"}
    assert access["ts"].endswith("Z") and "T" in access["ts"]
    for line in captured.lines:  # codes, states and the path's identifier stay out
        assert "SECRET-CODE" not in line and "S3" not in line and "person-4711" not in line


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("proxy-0123456789abcdef", True),
        ("short", False),  # too short to be an id
        ("Hanako Yamada 1984-05-12", False),  # free text: a name must not get into the logs
        ('x" forged="1', False),
        ("a" * 65, False),
    ],
)
def test_a_callers_request_id_is_kept_only_when_safe(
    tmp_path: Path, sent: str, kept: bool, captured: Lines
) -> None:
    resp = _app(tmp_path).test_client().get("/things/1", headers={request_ids.HEADER: sent})
    answered = resp.headers[request_ids.HEADER]
    assert (answered == sent) is kept
    assert all(sent not in line for line in captured.lines) or kept


def test_the_request_id_follows_the_call_to_the_next_service(
    tmp_path: Path, captured: Lines
) -> None:
    downstream = _app(tmp_path / "down", service="fhir")
    server = make_server("127.0.0.1", 0, downstream, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        upstream = _app(tmp_path / "up", service="consent")
        upstream.config["RELAY_TO"] = f"http://127.0.0.1:{server.server_port}"
        resp = upstream.test_client().get("/relay")
    finally:
        server.shutdown()
        thread.join(5)
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "ok"
    rid = resp.headers[request_ids.HEADER]
    events = captured.events()
    there = _access(events, "/things/<thing_id>")
    assert there["service"] == "fhir" and there["request_id"] == rid
    assert _access(events, "/relay")["request_id"] == rid


def test_text_format_for_the_developers_console(tmp_path: Path) -> None:
    handler = Lines("text")
    logging.getLogger().addHandler(handler)
    try:
        resp = _app(tmp_path).test_client().get("/things/2?code=SECRET")
    finally:
        logging.getLogger().removeHandler(handler)
    rid = resp.headers[request_ids.HEADER]
    line = handler.lines[-1]
    assert f"INFO phr.access: request [connector {rid}] method=GET route=/things/<thing_id>" in line
    assert "query=code=- status=200" in line and "SECRET" not in line


def test_log_format_setting(tmp_path: Path) -> None:
    base = make_environ(tmp_path, "sqlite://")
    assert load_settings(base).log_format == "text"  # development
    assert load_settings({**base, "PHR_LOG_FORMAT": "JSON"}).log_format == "json"
    assert load_settings({**base, "PHR_ENV": "production"}).log_format == "json"
    with pytest.raises(ConfigError, match="PHR_LOG_FORMAT"):
        load_settings({**base, "PHR_LOG_FORMAT": "xml"})


def test_the_query_names_and_shown_values_cannot_carry_data_or_forge_lines(
    tmp_path: Path, captured: Lines
) -> None:
    """A caller chooses the query's parameter names, and the values of the few shown ones:
    a bare value (`?<token>`), a name, a line break or a long run must not reach the logs."""
    token = "eyJhbGciOiJFUzI1NiJ9.SECRETPAYLOAD.sig"
    query = (
        f"{token}&Hanako%20Yamada=1&lang=ja%0Afake%20line&_sort=family,"
        "given&x%0Ainjected=1&person-4711&" + "&".join("page=1" for _ in range(200))
    )
    client = _app(tmp_path).test_client()
    client.get(f"/things/1?{query}")
    access = _access(captured.events(), "/things/<thing_id>")
    shown = access["query"]
    for leaked in ("eyJ", "SECRETPAYLOAD", "Hanako", "fake", "injected", "4711", "\n"):
        assert leaked not in shown
    assert "_sort=family,given" in shown  # a harmless shown value stays readable
    assert len(shown) < 400  # a caller cannot grow one line without bound


def test_a_text_line_stays_one_line_whatever_a_message_holds(tmp_path: Path) -> None:
    handler = Lines("text")
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("phr.test").warning("refused %s", "x\n2026-01-01 INFO forged: ok\r")
    finally:
        logging.getLogger().removeHandler(handler)
    line = handler.lines[-1]
    assert "\n" not in line and "\r" not in line and "forged" in line
