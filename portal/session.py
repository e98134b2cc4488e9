"""Who the portal is and who is signed in: the keys of the portal's signed session cookie and
the helpers every page reads them through (the sign-in in portal/auth.py writes them).

Only the subject, the ID token (for logout), the issuer signed in at (when not the home IdP),
the CSRF token (phr_core/csrf.py) and a random handle of the server-side tokens are kept in the
cookie."""

from __future__ import annotations

from flask import session

from phr_core import csrf
from phr_core.webapp import settings

PENDING = "oidc"  # a sign-in in progress
SUBJECT = "sub"
ID_TOKEN = "id_token"  # noqa: S105 (a session key, not a secret)
TOKENS = "phr"  # the handle of the server-side tokens
IDP = "idp"  # the issuer signed in at, when it is not the home IdP


def client_id() -> str:
    """The portal's client id at every IdP (and who it records consents as)."""
    return settings().option("PHR_CONSENT_CLIENT_ID")


def current_subject() -> str | None:
    sub = session.get(SUBJECT)
    return sub if isinstance(sub, str) and sub else None


def signed_in_issuer() -> str:
    """The IdP the current session signed in at (the home IdP unless another was chosen)."""
    issuer = session.get(IDP)
    return issuer if isinstance(issuer, str) and issuer else settings().issuer


def csrf_token() -> str:
    return csrf.token()


def check_csrf() -> None:
    """Every form post carries the session's CSRF token (phr_core/csrf.py), else 400."""
    csrf.check()
