"""Cross-site request forgery tokens, one implementation for every browser-facing service.

A random token bound to the browser's signed Flask session (made on first use) that every
state-changing request sends back, as the form field `csrf` (HTML forms) or the header
`X-CSRF-Token` (script requests); compared in constant time, and an empty or missing token on
either side never matches. A page without a session (a sign-in form before sign-in) checks
against a token it keeps elsewhere (a double-submit cookie, a database row) through `matches`.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf"  # the form field, and the key in the Flask session
HEADER = "X-CSRF-Token"
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token() -> str:
    """This session's token (made, and kept in the session, on first use)."""
    found = session.get(FIELD)
    if not isinstance(found, str) or not found:
        found = session[FIELD] = new_token()
    return found


def renew() -> str:
    """A new token for a new sign-in (a token seen before it must not outlive it)."""
    found = session[FIELD] = new_token()
    return found


def sent() -> str:
    """The token this request carries: the header, else the form field ("" when neither)."""
    return request.headers.get(HEADER) or request.form.get(FIELD, "")


def matches(sent_token: object, expected: object) -> bool:
    """Constant-time equality of two non-empty strings."""
    if not isinstance(sent_token, str) or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(sent_token.encode(), expected.encode())


def valid() -> bool:
    """Whether this request carries its session's token."""
    return matches(sent(), session.get(FIELD))


def check() -> None:
    """Refuse (400) a request without its session's token."""
    if not valid():
        abort(400, description="csrf")
