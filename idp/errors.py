"""OAuth 2.0 / OpenID Connect errors (RFC 6749 5.2 and 4.1.2.1, OIDC Core 3.1.2.6)."""

from __future__ import annotations

from flask import Response, jsonify


class OAuthError(Exception):
    """One precise protocol error. `status` applies to JSON answers (token, introspection,
    registration); the authorization endpoint turns it into a redirect or a page."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def json_response(self) -> Response:
        resp = jsonify(error=self.error, error_description=self.description)
        resp.status_code = self.status
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        if self.status == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="token"'
        return resp


def shown(value: object, limit: int = 60) -> str:
    """A value quoted for an error description: RFC 6749 allows only printable ASCII without
    `"` and `\\`, so anything else is written as <U+XXXX> (a bidi override shows as <U+202E>),
    and a long value is cut: an error names what was wrong without echoing an attacker's
    string unbounded."""
    text = value if isinstance(value, str) else repr(value)
    out = "".join(
        c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else f"<U+{ord(c):04X}>"
        for c in text[:limit]
    )
    return f"'{out}'" + ("..." if len(text) > limit else "")


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)
