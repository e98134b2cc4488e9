"""The services' logs: one event per line, with its time, level, service and request id.

`PHR_LOG_FORMAT=json` (the default in production) writes each event as one JSON object per
line, for a log collector; `text` (the default in development, `phr dev run`) writes the same
fields as a readable line. The app logs and the access line go through here; gunicorn's own
lines (worker start and stop) too, through phr_core.gunicorn_conf.

The access line is written by the app (`install`), not by gunicorn: it knows the route
template, the service and the request id. It names the route template, never the path asked
for (paths carry record and person identifiers), and of the query string only the parameter
names, with values blanked except a few harmless ones (`QUERY_SHOWN`): authorization codes,
states and tokens travel in query strings. It names no client address either (personal data;
the reverse proxy keeps connection logs if the operator wants them).

What a log line may say is the caller's business: messages name kinds and counts, never a
token, PIN, key or anything about a person (docs/operations.md, "Logs").
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Response, current_app, g, has_app_context, request

from phr_core import request_ids

ACCESS_LOGGER = "phr.access"
FIELDS = "phr_fields"  # a record's extra fields: log.info("...", extra={FIELDS: {...}})
REDACTED = "-"
# Query parameters whose values are safe and useful to see (paging and FHIR search shape).
QUERY_SHOWN = frozenset({"_count", "_sort", "_summary", "_elements", "_format", "_total", "lang"})
QUERY_PARAMS_SHOWN = 20  # a caller must not grow one access line without bound
# A parameter name, or a shown value, as it appears in the line; anything else is blanked.
# Names hold no digits: a token, code, date or number sent as a bare `?value` would.
_NAME = re.compile(r"[A-Za-z_][A-Za-z_.:-]{0,39}")
_VALUE = re.compile(r"[A-Za-z0-9_.,:+-]{0,64}")
# Line breaks and other control characters, escaped in a text line (one event, one line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_REQUEST_ID_RESET = "phr_request_id_reset"
_STARTED = "phr_access_started"

_process_service = "-"  # the service of this process (gunicorn worker): lines outside requests


def service_of_record() -> str:
    """The service a line is about: the app of the current request, else this process's."""
    if has_app_context():
        spec = current_app.extensions.get("phr_service")
        if spec is not None:
            return str(spec.name)
    return _process_service


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, event, request_id, logger, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "service": service_of_record(),
            "event": record.getMessage(),
            "request_id": request_ids.current(),
            "logger": record.name,
        }
        doc.update(getattr(record, FIELDS, None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: an exception's message may carry data; the trace is for DEBUG.
            doc["error"] = record.exc_info[0].__name__
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                doc["trace"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The same fields as a readable line, for a developer's console."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # The event is one line whatever its message holds (a line break cannot forge the
        # next one); a trace, when there is one, follows on its own lines as Python prints it.
        event = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        line = f"{super().format(event)} [{service_of_record()}"
        rid = request_ids.current()
        line += f" {rid}]" if rid else "]"
        fields = getattr(record, FIELDS, None) or {}
        line += "".join(f" {k}={v}" for k, v in fields.items() if v is not None)
        line = _CONTROL.sub(lambda m: repr(m.group())[1:-1], line)
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


class _Handler(logging.StreamHandler):
    """The platform's own handler on the root logger (replaced, not added, on reconfigure).
    It writes to the stderr of the moment: a test runner swaps it, and a stream it closed
    must not be written to."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def name_process(service: str) -> None:
    """The service this process serves, for lines written outside a request."""
    global _process_service
    _process_service = service


def configure(level: str, fmt: str, service: str | None = None) -> None:
    """Send every log line to stderr in `fmt`; `service` names lines outside a request."""
    if service:
        name_process(service)
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if not ours:
        root.setLevel(level)  # once: a test's caplog.set_level must survive later apps
    for h in ours:
        root.removeHandler(h)
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    # Access lines are written whatever PHR_LOG_LEVEL says, as gunicorn's were.
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    # Alembic announces its dialect on every readiness probe; that is noise, not news.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def install(app: Flask) -> None:
    """Give every request of `app` its request id (answered in `X-Request-ID`) and an access
    line."""
    access = logging.getLogger(ACCESS_LOGGER)

    @app.before_request
    def _enter() -> None:
        g.setdefault(_STARTED, time.perf_counter())
        rid = request_ids.accept(request.headers.get(request_ids.HEADER))
        setattr(g, _REQUEST_ID_RESET, request_ids.enter(rid))

    @app.after_request
    def _access(resp: Response) -> Response:
        rid = request_ids.current()
        if rid:
            resp.headers[request_ids.HEADER] = rid
        started = g.get(_STARTED, time.perf_counter())
        rule = request.url_rule
        fields = {
            "method": request.method,
            "route": rule.rule if rule else "[unmatched]",
            "query": redacted_query(request.query_string.decode("latin-1")),
            "status": resp.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "bytes": resp.content_length,
        }
        access.info("request", extra={FIELDS: fields})
        return resp

    @app.teardown_request
    def _leave(_exc: BaseException | None) -> None:
        token = g.pop(_REQUEST_ID_RESET, None)
        if token is not None:
            request_ids.leave(token)


def redacted_query(query: str) -> str | None:
    """The query string's parameter names, values blanked but for `QUERY_SHOWN`.

    The caller picks the names too: a name that is not a short word without digits (a bare
    token as `?eyJ…`, an identifier, a line break) is blanked like a value, a shown value
    that is not plain is blanked, and only the first `QUERY_PARAMS_SHOWN` are named."""
    if not query:
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [
        f"{_plain(k, _NAME)}={_plain(v, _VALUE) if k in QUERY_SHOWN else REDACTED}"
        for k, v in pairs[:QUERY_PARAMS_SHOWN]
    ]
    if len(pairs) > QUERY_PARAMS_SHOWN:
        shown.append(f"…{len(pairs) - QUERY_PARAMS_SHOWN}")
    return "&".join(shown)


def _plain(text: str, pattern: re.Pattern[str]) -> str:
    return text if pattern.fullmatch(text) else REDACTED
