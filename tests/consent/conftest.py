"""Consent-service fixtures: a real issuer key whose JWKS a live loopback server serves (the
verifier fetches it over HTTP as in production), access tokens signed with it, and the consent
app on the migrated test database with the demo municipality."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey

from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.demo_data import DEMO_MUNICIPALITY
from phr_core.tokens import access_token_cipher, seal
from tests.browser import live_server
from tests.conftest import make_environ

CITY = DEMO_MUNICIPALITY.code
IDP_SCOPES = "consent/grants.write consent/grants.read"
PHR_SCOPES = "consent/grants.read consent/patients.read"


@pytest.fixture(scope="session")
def issuer_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "consent-test-1"})


@pytest.fixture(scope="session")
def issuer_url(issuer_key: ECKey) -> Iterator[str]:
    app = Flask("test_issuer")

    @app.get("/jwks")
    def jwks() -> dict[str, object]:
        return {"keys": [issuer_key.as_dict(private=False)]}

    with live_server(app) as url:
        yield url


@pytest.fixture
def environ(tmp_path: Path, database_url: str, issuer_url: str) -> dict[str, str]:
    return make_environ(tmp_path, database_url, PHR_ISSUER=issuer_url)


@dataclass
class Tokens:
    key: ECKey
    settings: Settings

    def mint(
        self,
        scope: str,
        *,
        client_id: str = "idp",
        sub: str | None = None,
        municipality: str | None = None,
        audience: str | None = None,
        expires_in: int = 300,
        issuer: str | None = None,
        sealed: bool = True,
        seal_secret: str | None = None,
        grant_id: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": issuer or self.settings.issuer,
            "aud": audience or self.settings.urls["consent"],
            "sub": sub or client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + expires_in,
            "jti": uuid.uuid4().hex,
        }
        if municipality:
            claims["municipality"] = municipality
        if grant_id:
            claims["grant_id"] = grant_id
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        signed = jwt.encode(header, claims, self.key)
        if not sealed:
            return signed
        # As the IdP issues them for resource servers: a JWE under PHR_ACCESS_TOKEN_KEY.
        secret = seal_secret or self.settings.secret("PHR_ACCESS_TOKEN_KEY")
        return seal(signed, access_token_cipher(secret))

    def headers(self, scope: str, **kw: object) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.mint(scope, **kw)}  # type: ignore[arg-type]

    @property
    def idp(self) -> dict[str, str]:
        return self.headers(IDP_SCOPES)

    @property
    def phr(self) -> dict[str, str]:
        return self.headers(PHR_SCOPES, client_id="phr-server")

    def connector(self, city: str = CITY) -> dict[str, str]:
        return self.headers("consent/linkage", client_id=f"connector-{city}", municipality=city)


@pytest.fixture
def tokens(issuer_key: ECKey, migrated: Settings) -> Tokens:
    return Tokens(issuer_key, migrated)


@pytest.fixture
def consent_app(migrated: Settings, app_factory: Callable[[str], Flask]) -> Flask:
    load_all(migrated)
    return app_factory("consent")


@pytest.fixture
def client(consent_app: Flask) -> FlaskClient:
    return consent_app.test_client()


ATTRIBUTES = {
    "name": "会津 花子",
    "birthdate": "1994-04-01",
    "sex": "2",
    "address": "福島県会津若松市東栄町3-46",
}


def link_city(
    client: FlaskClient,
    tokens: Tokens,
    subject: str,
    code: str,
    *,
    categories: tuple[str, ...] = ("mch", "vaccination", "checkup"),
    children: list[dict[str, str]] | None = None,
    include_children: bool = True,
) -> str:
    """Consent for the demo city as the IdP would, and answer as the city's connector would.
    Returns the consent id."""
    r = client.post(
        f"/api/v1/subjects/{subject}/municipalities/{CITY}/consent",
        json={
            "categories": list(categories),
            "attributes": ATTRIBUTES,
            "include_children": include_children,
        },
        headers=tokens.idp,
    )
    assert r.status_code == 201, r.json
    request_id = r.json["link_request"]
    r2 = client.post(
        f"/api/v1/municipalities/{CITY}/link-requests/{request_id}",
        json={"code": code, "children": children or []},
        headers=tokens.connector(),
    )
    assert r2.status_code == 200, r2.json
    return r.json["consent"]["id"]
