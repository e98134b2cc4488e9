"""gunicorn workers whose own refusals speak the service's error format.

gunicorn reads the request line and headers before the app sees anything, and refuses a line
over `--limit-request-line` (8190 bytes at most) or oversized headers with a small HTML page
of its own. These workers answer those two the way the app answers everything else (the
renderer build_app registered: an OperationOutcome at the PHR server, RFC 6749 JSON at the IdP,
a readable page at the portal). The path of such a request is unknown (it was never read), so
a service that answers by path (the consent service: JSON under /api/, pages elsewhere) answers
as at `/`. Every other error keeps gunicorn's handling. The runner starts services with them."""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker
from gunicorn.workers.sync import SyncWorker as _SyncWorker
from werkzeug.exceptions import HTTPException, RequestHeaderFieldsTooLarge, RequestURITooLarge

from phr_core.webapp import RENDER_ERROR


def response_bytes(app: Any, exc: HTTPException) -> bytes:
    """A complete HTTP/1.1 response for `exc`, rendered by the app's own error renderer."""
    with app.test_request_context("/"):
        resp = app.extensions[RENDER_ERROR](exc)
        body = resp.get_data()
        head = [f"HTTP/1.1 {resp.status}", "Connection: close"]
        for name, value in resp.headers.items():
            if name.lower() not in ("connection", "content-length"):
                head.append(f"{name}: {value}")
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _ServiceErrors:
    log: Any
    wsgi: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, LimitRequestLine):
            refusal: HTTPException = RequestURITooLarge("the request line is too long")
        elif isinstance(exc, LimitRequestHeaders):
            refusal = RequestHeaderFieldsTooLarge("the request headers are too large")
        else:
            # gunicorn's worker after this mixin in the MRO has it; mypy cannot see that.
            return super().handle_error(req, client, addr, exc)  # type: ignore[misc]  # mixin
        ip = (addr or ("",))[0]
        self.log.warning("Invalid request from ip=%s: %s", ip, type(exc).__name__)
        try:
            util.write_nonblock(client, response_bytes(self.wsgi, refusal))
        except Exception:  # the client may be gone; nothing to answer then
            self.log.debug("Failed to send error message.")


class SyncWorker(_ServiceErrors, _SyncWorker):
    """gunicorn's sync worker, refusing in the service's format."""


class ThreadWorker(_ServiceErrors, _ThreadWorker):
    """gunicorn's gthread worker, refusing in the service's format."""
