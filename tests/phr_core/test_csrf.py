"""One CSRF implementation (phr_core/csrf.py) for the IdP, passkey and the portal: a token bound
to the session, sent back as the form field or the header, compared in constant time; a missing,
empty, other session's or non-ASCII token is refused."""

from __future__ import annotations

import pytest
from flask import Flask, session
from werkzeug.exceptions import BadRequest

from phr_core import csrf


def _app() -> Flask:
    app = Flask("csrf-test")
    app.secret_key = "k" * 32
    return app


def test_a_request_needs_its_sessions_token_by_form_or_header() -> None:
    app = _app()
    with app.test_request_context("/", method="POST"):
        token = csrf.token()
        assert csrf.token() == token  # kept in the session
        assert not csrf.valid()
        with pytest.raises(BadRequest):
            csrf.check()
    for kw in ({"data": {"csrf": "x"}}, {"headers": {"X-CSRF-Token": "x"}}):
        with app.test_request_context("/", method="POST", **kw):  # type: ignore[arg-type]
            session["csrf"] = "x"
            assert csrf.valid()
            csrf.check()
            assert csrf.renew() != "x" and not csrf.valid()  # a new sign-in, a new token


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("", ""), ("a", ""), ("", "a"), ("a", "b"), ("é", "e"), (None, "a"), ("a", None)],
)
def test_matches_refuses(sent: object, expected: object) -> None:
    assert not csrf.matches(sent, expected)


def test_matches_non_ascii_without_an_error() -> None:
    assert csrf.matches("é", "é")
