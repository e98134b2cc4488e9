"""private_key_jwt end to end: the connector signs RFC 7523 client assertions with its own key,
the real IdP (registered with the connector's public JWK only) issues the client-credentials
token, and the real PHR server accepts it for a load. Wrong key, expired assertion and a
replayed jti are refused with RFC 6749 errors that the connector reports plainly."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import make_server

from connectors.client_key import ClientAssertion, load_signing_key, public_jwk
from connectors.http import TokenError, TokenSource
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.transport import FhirTransport
from launcher.cli import main
from phr_core.config import Settings
from tests.connectors.helpers import CITY, KEY, consents, make_city

CLIENT = f"connector-{CITY}"
KEY_TEXT = "connector-signing-key-for-tests-0123456789abcdef"


@contextmanager
def serve_at(app: Flask, url: str) -> Iterator[str]:
    """Serve `app` on the port its settings name, so issuer and audiences match."""
    server = make_server("127.0.0.1", urlsplit(url).port or 80, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def idp(app_factory: Callable[[str], Flask], migrated: Settings) -> Iterator[Settings]:
    """The real IdP, with the connector registered by its public JWK (no secret)."""
    from idp.app import prepare
    from idp.clients import upsert_static

    prepare(migrated)  # the IdP's own signing keys
    app = app_factory("idp")
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": CLIENT,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [public_jwk(load_signing_key(KEY_TEXT))]},
                "grant_types": ["client_credentials"],
                "scope": "system/*.cu system/*.write",
                "phr_sector": "phr",
                "phr_municipality": CITY,
            },
            None,
        )
    with serve_at(app, migrated.issuer):
        yield migrated


def _tokens(settings: Settings, signer: ClientAssertion) -> TokenSource:
    return TokenSource(settings.issuer, CLIENT, signer=signer, scope="system/*.cu")


def test_connector_loads_with_a_token_from_the_real_idp(
    idp: Settings, app_factory: Callable[[str], Flask], tmp_path: Path
) -> None:
    from phr_server.models import StoredResource
    from phr_server.policy import InMemoryConsentDirectory

    fhir = app_factory("fhir")
    fhir.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=120, months=1)
    tokens = _tokens(idp, ClientAssertion(CLIENT, load_signing_key(KEY_TEXT)))
    with serve_at(fhir, idp.urls["fhir"]) as url:
        c = Connector(
            CITY,
            Pseudonymizer(KEY),
            consents(files["consents"]),
            FhirTransport(url, tokens),
            register_path=files["register"],
            report=Report(io.StringIO()),
        )
        created = 0
        for p in sorted((tmp_path / "inbox").iterdir()):
            if detect_source(p):
                summary = c.run_file(p)
                assert summary.rejected == 0
                created += summary.created
    assert created > 0
    with fhir.extensions["phr_db"].session() as s:
        stored = s.scalar(select(func.count()).select_from(StoredResource))
        assert stored is not None and stored >= created


def test_each_token_request_signs_a_fresh_assertion(idp: Settings) -> None:
    tokens = _tokens(idp, ClientAssertion(CLIENT, load_signing_key(KEY_TEXT)))
    first = tokens.token(idp.urls["fhir"])
    second = tokens.token(idp.urls["fhir"], refresh=True)  # a new jti: not a replay
    assert first and second and first != second


class Replaying(ClientAssertion):
    """Sends the same assertion every time, as an attacker who captured one would."""

    def __init__(self, *a: object) -> None:
        super().__init__(*a)  # type: ignore[arg-type]
        self.fixed: str | None = None

    def sign(self, audience: str, **kw: object) -> str:
        self.fixed = self.fixed or super().sign(audience)
        return self.fixed


class Expired(ClientAssertion):
    def sign(self, audience: str, **kw: object) -> str:
        return super().sign(audience, now=time.time() - 600)


def test_refusals_are_rfc6749_errors_the_connector_names(idp: Settings) -> None:
    key = load_signing_key(KEY_TEXT)
    wrong = _tokens(idp, ClientAssertion(CLIENT, load_signing_key("another-key-0123456789abcdef")))
    with pytest.raises(TokenError) as exc:
        wrong.token(idp.urls["fhir"])
    assert (exc.value.status, exc.value.error) == (401, "invalid_client")
    assert "signature" in exc.value.description

    with pytest.raises(TokenError) as exc:
        _tokens(idp, Expired(CLIENT, key)).token(idp.urls["fhir"])
    assert exc.value.error == "invalid_client" and "expired" in exc.value.description

    replay = _tokens(idp, Replaying(CLIENT, key))
    assert replay.token(idp.urls["fhir"])
    with pytest.raises(TokenError) as exc:
        replay.token(idp.urls["fhir"], refresh=True)
    assert exc.value.error == "invalid_client" and "replayed" in exc.value.description
    assert "the IdP refused the connector's token request: invalid_client" in str(exc.value)


def test_cli_reports_a_refused_key_and_stops(
    idp: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_city(tmp_path / "inbox", n=120, months=1)
    for k, v in idp.environ.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PHR_CONNECTOR_CLIENT_ID", CLIENT)
    monkeypatch.setenv("PHR_CONNECTOR_MUNICIPALITY", CITY)
    monkeypatch.setenv("PHR_CONNECTOR_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("PHR_CONNECTOR_SIGNING_KEY", "not-the-registered-key-0123456789")
    monkeypatch.setenv("PHR_CONNECTOR_INBOX", str(tmp_path / "inbox"))
    r = CliRunner().invoke(main, ["connector", "run", "--consent-file", str(files["consents"])])
    assert r.exit_code == 2, r.output
    assert "the IdP refused the connector's token request: invalid_client" in r.output
    assert "PHR_CONNECTOR_SIGNING_KEY" in r.output
    assert "not-the-registered-key" not in r.output  # the key itself is never echoed


def test_jwk_command_prints_only_the_public_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHR_CONNECTOR_SIGNING_KEY", KEY_TEXT)
    r = CliRunner().invoke(main, ["connector", "jwk"])
    assert r.exit_code == 0, r.output
    assert '"kty": "EC"' in r.output and '"d"' not in r.output
    assert public_jwk(load_signing_key(KEY_TEXT))["x"] in r.output


def test_production_refuses_a_development_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHR_ENV", "production")
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PHR_CONNECTOR_SIGNING_KEY", "dev-" + "x" * 40)
    r = CliRunner().invoke(main, ["connector", "jwk"])
    assert r.exit_code != 0 and "development key" in r.output


def test_signing_key_forms(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert load_signing_key(pem.decode()).is_private
    derived = load_signing_key(KEY_TEXT)
    assert public_jwk(derived) == public_jwk(load_signing_key(KEY_TEXT))  # stable
    assert public_jwk(derived) != public_jwk(load_signing_key(KEY_TEXT + "!"))
    rsa_pem = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="P-256"):
        load_signing_key(rsa_pem.decode())
