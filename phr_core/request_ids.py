"""The request id that lets an operator follow one user action across the services' logs.

Each request gets one (`X-Request-ID`): the caller's, when it is a short token of safe
characters (another service of ours, a reverse proxy that sets one), else a new random one. It
is answered in the response, stamped on every log line written while the request runs
(phr_core.logs), and sent on the service's own calls to the other services (`outgoing`), so
the portal's page, the PHR server's read it caused and the consent decision that read asked
for all carry the same id.

A caller's value is refused unless it matches `SAFE`: a free-text header would let anyone write
what they like (a name, a line break, a forged log line) into the logs.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar, Token

HEADER = "X-Request-ID"
SAFE = re.compile(r"[A-Za-z0-9._-]{8,64}")

_current: ContextVar[str | None] = ContextVar("phr_request_id", default=None)
_job: str | None = None  # a batch job's id, for all its threads (`start_job`)


def accept(sent: str | None) -> str:
    """The caller's id when it is a safe short token, else a new one."""
    if sent and SAFE.fullmatch(sent):
        return sent
    return new()


def new() -> str:
    """A fresh random id (96 bits, URL-safe)."""
    return secrets.token_urlsafe(12)


def current() -> str | None:
    """The id of the request (or batch job) this code runs for, if any."""
    return _current.get() or _job


def start_job() -> str:
    """Give this whole process (a batch job such as a connector run, whose sending threads
    start without the caller's context) one id for its calls; returned for its output."""
    global _job
    _job = new()
    return _job


def enter(request_id: str) -> Token[str | None]:
    """Make `request_id` current (until `leave` with the returned token)."""
    return _current.set(request_id)


def leave(token: Token[str | None]) -> None:
    _current.reset(token)


def outgoing(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """`headers` plus the current request id, for a call to another service."""
    out = dict(headers or {})
    rid = current()
    if rid and HEADER not in out:
        out[HEADER] = rid
    return out
