"""Demo data for the IdP: the platform's own clients and a sandbox app, registered statically.

A city's connector authenticates with its own key: the launcher (launcher/demo.py) reads the
connector's public JWK and passes it in, as services do not import each other."""

from __future__ import annotations

from typing import Any

from idp.clients import upsert_static, validate_metadata
from idp.models import Client
from idp.subjects import PHR_SECTOR
from phr_core.config import Settings
from phr_core.db import Database

DEMO_APP_PORT = 8010
DEMO_APP_ID = "demo-vaccination-app"


def demo_clients(
    settings: Settings, connector_jwk: dict[str, Any]
) -> list[tuple[dict, str | None]]:
    """(metadata, secret) of the clients a development platform has."""
    portal = settings.urls["consent"]
    return [
        *city_clients(settings, connector_jwk),
        (
            {
                "client_id": settings.option("PHR_CONSENT_CLIENT_ID"),
                "client_name": "わたしの健康記録ポータル",
                "client_name#en": "My Health Record Portal",
                "redirect_uris": [f"{portal}/auth/callback"],
                "post_logout_redirect_uris": [f"{portal}/"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"],
                # Sign-in, and reading the person's own and children's records (no grant:
                # the IdP marks its tokens first-party; phr_server.policy accepts them).
                "scope": "openid offline_access user/*.rs",
                "phr_sector": PHR_SECTOR,
                "phr_first_party": True,
                "purpose": "あなたの同意とデータの利用状況を管理するため",
                "purpose#en": "To manage your consents and see how your data is used",
            },
            settings.secret("PHR_CONSENT_CLIENT_SECRET"),
        ),
        (
            {
                "client_id": DEMO_APP_ID,
                "client_name": "予防接種スケジュール（デモアプリ）",
                "organization_name": "PHR プラットフォーム開発チーム（デモ）",
                "organization_name#en": "PHR platform developers (demo)",
                "client_name#en": "Vaccination schedule (demo app)",
                **{key: [uri] for key, uri in example_uris(DEMO_APP_PORT).items()},
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access launch/patient "
                "patient/Immunization.rs patient/Observation.rs patient/Patient.rs "
                # the example app asks for body measurements alone (docs/apps.md)
                "patient/Observation.rs?category="
                "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
                "|body-measurement",
                "purpose": "お子さんの予防接種の予定と成長の記録を表示するため",
                "purpose#en": "To show your child's vaccination schedule and growth",
            },
            None,
        ),
        (
            {
                "client_id": settings.option("PHR_CONSENT_SERVICE_CLIENT_ID"),
                "client_name": "同意サービス",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "scope": "phr/erase",
                "phr_sector": PHR_SECTOR,
            },
            settings.secret("PHR_CONSENT_SERVICE_SECRET"),
        ),
    ]


def city_clients(
    settings: Settings, connector_jwk: dict[str, Any]
) -> list[tuple[dict, str | None]]:
    """A city's connector (`connector_jwk`: its public key) and PHR server as clients of the
    IdP (`settings`: that city's). Development only: a real IdP gets the connector's JWK from
    the municipality (`phr connector jwk`, PHR_IDP_CLIENTS_FILE)."""
    code = settings.option("PHR_CONNECTOR_MUNICIPALITY")
    return [
        (
            {
                "client_id": settings.option("PHR_CONNECTOR_CLIENT_ID"),
                "client_name": f"市区町村コネクタ {code}",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [connector_jwk]},
                "grant_types": ["client_credentials"],
                "scope": "system/*.cu system/*.write consent/linkage",
                "phr_sector": PHR_SECTOR,
                "phr_municipality": code,
            },
            None,
        ),
        (
            {
                "client_id": settings.option("PHR_FHIR_CLIENT_ID"),
                "client_name": "PHR サーバ",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "scope": "consent/grants.read consent/patients.read consent/arrivals.write",
                "phr_sector": PHR_SECTOR,
            },
            settings.secret("PHR_FHIR_CLIENT_SECRET"),
        ),
    ]


def example_uris(port: int) -> dict[str, str]:
    """The example app's redirect and post-logout URIs on loopback port `port`."""
    base = f"http://127.0.0.1:{port}"
    return {"redirect_uris": f"{base}/callback", "post_logout_redirect_uris": f"{base}/"}


def allow_example_port(db: Database, port: int, client_id: str = DEMO_APP_ID) -> bool:
    """Development: let the sandbox app's client come back to the example app on `port`
    (`phr dev example --port N`), besides the ports it already has. The IdP reads clients
    per request, so a running platform takes it at once. False when the client is not
    registered (the platform has not run yet)."""
    with db.session() as s:
        row = s.get(Client, client_id)
        if row is None:
            return False
        meta = dict(row.client_metadata)
        for key, uri in example_uris(port).items():
            if uri not in meta.get(key, []):
                meta[key] = [*meta.get(key, []), uri]
        validate_metadata(meta)
        row.client_metadata = meta
    return True


def load(db: Database, settings: Settings, *, connector_jwk: dict[str, Any]) -> int:
    """Register the demo clients (`connector_jwk`: the demo city's connector's public key);
    running it twice adds nothing new."""
    return _register(db, demo_clients(settings, connector_jwk))


def load_city(db: Database, city: Settings, connector_jwk: dict[str, Any]) -> int:
    """The second demo city's connector and PHR server (`city`: its settings), once."""
    return _register(db, city_clients(city, connector_jwk))


def _register(db: Database, clients: list[tuple[dict, str | None]]) -> int:
    added = 0
    with db.session() as s:
        for meta, secret in clients:
            if s.get(Client, meta["client_id"]) is None:
                added += 1
            upsert_static(s, meta, secret)
    return added
