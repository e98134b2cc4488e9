"""Limits on what a request may make a worker hold: its body, its URL and its JSON nesting.

Every service installs them (phr_core.webapp.build_app) and answers a request over a limit
through its own error renderer: 413 / 414 / 400 as an OperationOutcome at the PHR server, as
RFC 6749 JSON at the IdP and the consent API, as a readable page at the portal.

* Body: `PHR_MAX_REQUEST_BYTES` (Flask's MAX_CONTENT_LENGTH). A declared Content-Length over
  it is refused before the view runs. A chunked body has none: Werkzeug reads it up to the
  limit and then silently stops (a truncated body, not an error), so `_CappedInput` looks one
  byte further and answers 413 when there is more. No worker holds more than the limit.
* URL: `PHR_MAX_URL_BYTES`, path and query string together, refused with 414 before the view
  runs. gunicorn reads the request line itself first (the runner gives it its largest limit,
  8190 bytes, above the default here); a longer line never reaches the app.
* JSON: nested at most phr_core.bounded_json.MAX_DEPTH levels, for `request.get_json()` too."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestURITooLarge

from phr_core.bounded_json import BoundedJSONProvider
from phr_core.config import ConfigError, Settings


def _bytes_option(settings: Settings, name: str, low: int, high: int) -> int:
    raw = settings.option(name)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(
            f"{name} must be a whole number of bytes from {low} to {high}, not {raw!r}"
        )
    return int(raw)


def max_request_bytes(settings: Settings) -> int:
    return _bytes_option(settings, "PHR_MAX_REQUEST_BYTES", 1024, 1 << 31)


def max_url_bytes(settings: Settings) -> int:
    # gunicorn's request line holds at most 8190 bytes with the method and protocol
    return _bytes_option(settings, "PHR_MAX_URL_BYTES", 256, 8150)


class _CappedInput:
    """A chunked request body (no Content-Length) that raises 413 once it proves longer than
    `limit`: when a read reaches the limit, one more byte is asked for."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._seen = 0

    def _count(self, data: bytes) -> bytes:
        self._seen += len(data)
        if self._seen > self._limit or (self._seen == self._limit and self._stream.read(1)):
            raise RequestEntityTooLarge(f"the request body is larger than {self._limit} bytes")
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit + 1 - self._seen
        return self._count(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._limit + 1 - self._seen
        return self._count(self._stream.readline(size))


def _capped_bodies(wsgi_app: Any, limit: int) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], limit)
        return wsgi_app(environ, start_response)

    return app


def install(app: Flask, settings: Settings) -> None:
    """Apply the three limits to `app`; a bad setting fails the start."""
    body_limit = max_request_bytes(settings)
    url_limit = max_url_bytes(settings)
    app.config["MAX_CONTENT_LENGTH"] = body_limit
    # Flask's documented way to wrap the WSGI app in middleware (a method, to mypy)
    app.wsgi_app = _capped_bodies(app.wsgi_app, body_limit)  # type: ignore[method-assign]  # above
    app.json = BoundedJSONProvider(app)

    @app.before_request
    def _limits() -> None:
        url = request.environ.get("RAW_URI") or (
            request.environ.get("PATH_INFO", "") + "?" + request.environ.get("QUERY_STRING", "")
        )
        if len(url.encode("utf-8", "surrogateescape")) > url_limit:
            raise RequestURITooLarge(f"the URL is longer than {url_limit} bytes")
        length = request.content_length
        if length is not None and length > body_limit:
            raise RequestEntityTooLarge(f"the request body is larger than {body_limit} bytes")
