"""IdP fixtures: an app on a migrated database with keys, registered clients, and a driver that
walks the browser side of the authorization code flow (dev sign-in, consent) with a test client."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.app import create_app, prepare
from idp.clients import upsert_static
from phr_core.config import Settings, load_settings

REDIRECT = "https://rp.example.jp/cb"
OTHER_REDIRECT = "https://other-rp.example.org/cb"


@pytest.fixture
def idp_app(migrated: Settings) -> Iterator[Flask]:
    # Protocol tests keep grants at the IdP; test_consent_grants.py runs the consent service.
    settings = load_settings({**migrated.environ, "PHR_IDP_GRANT_STORE": "local"})
    prepare(settings)
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["phr_db"].dispose()


@pytest.fixture
def register(idp_app: Flask) -> Callable[..., dict]:
    """Register a client; returns its metadata plus `client_secret`."""

    def make(client_id: str = "rp-1", secret: str | None = "rp-secret-" + "x" * 30, **meta) -> dict:
        full = {
            "client_id": client_id,
            "client_name": f"Test RP {client_id}",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
            "scope": "openid offline_access patient/Immunization.rs patient/Observation.rs",
            **meta,
        }
        with idp_app.extensions["phr_db"].session() as s:
            upsert_static(s, dict(full), secret)
        return {**full, "client_secret": secret}

    return make


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class Browser:
    """One person's browser at the IdP (a cookie jar) and how it answers the pages."""

    client: FlaskClient
    person: int = 1
    approve: bool = True
    patient: str | None = None  # the record picked on the consent screen, if asked
    pages: list[str] = field(default_factory=list)
    last_page: str = ""  # the HTML of the last sign-in or consent page shown
    choose: dict[str, str | list[str]] = field(default_factory=dict)  # more consent form fields
    consent_page: str = ""  # the HTML of the last consent screen

    def authorize(self, **params: str) -> dict[str, list[str]]:
        """Follow the authorization request through sign-in and consent to the redirect back
        to the client; returns the redirect's query parameters."""
        resp = self.client.get("/authorize?" + urlencode(params))
        for _ in range(8):
            if resp.status_code != 302:
                raise AssertionError(
                    f"stopped at {resp.status_code}: {resp.get_data(as_text=True)[:300]}"
                )
            location = resp.headers["Location"]
            parts = urlsplit(location)
            if parts.netloc and not location.startswith("http://localhost"):
                return parse_qs(parts.query)
            path = parts.path + ("?" + parts.query if parts.query else "")
            if parts.path in ("/login", "/consent"):
                self.pages.append(parts.path)
            page = self.client.get(path)
            self.last_page = page.get_data(as_text=True)
            if parts.path == "/login":
                csrf = _csrf(page.get_data(as_text=True))
                req = parse_qs(parts.query)["req"][0]
                resp = self.client.post(
                    "/login/dev", data={"csrf": csrf, "req": req, "person": str(self.person)}
                )
            elif parts.path == "/consent":
                self.consent_page = page.get_data(as_text=True)
                csrf = _csrf(self.consent_page)
                req = parse_qs(parts.query)["req"][0]
                decision = "allow" if self.approve else "deny"
                form = {"csrf": csrf, "req": req, "decision": decision}
                if self.patient:
                    form["patient"] = self.patient
                resp = self.client.post("/consent", data={**form, **self.choose})
            else:
                resp = page
        raise AssertionError("too many redirects")


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


@pytest.fixture
def browser(idp_app: Flask) -> Browser:
    return Browser(idp_app.test_client())


def code_request(client: dict, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def token_claims(app: Flask, token: str) -> dict:
    """Claims of one of our tokens, opening a sealed access token as a resource server would."""
    import json

    from phr_core.tokens import unseal

    signed = unseal(token, app.extensions["idp"].access_token_key)
    return json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))


def exchange(app: Flask, rp: dict, code: str, verifier: str):  # type: ignore[no-untyped-def]
    """The client's token request for an authorization code (client_secret_basic)."""
    return app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp["redirect_uris"][0],
            "code_verifier": verifier,
        },
        headers=basic(rp["client_id"], rp["client_secret"]),
    )
