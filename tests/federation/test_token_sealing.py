"""Per-resource-server token encryption: each resource server publishes its own encryption key
in its federation metadata, the IdP seals a token to the key of the server it is meant for
(falling back to the shared PHR_ACCESS_TOKEN_KEY for a server that publishes none), and still
opens what it sealed itself for introspection and revocation."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from flask import Flask
from joserfc import jwe

from federation import demo as federation_demo
from idp.app import create_app as create_idp
from idp.app import prepare
from idp.clients import ClientView, upsert_static
from idp.models import Client, Person
from idp.sealing import RecipientKeys
from idp.tokens import access_token
from phr_core import migrations, sealing
from phr_core.services import SERVICES, get_service
from phr_core.tokens import SEALING_ALGS, InvalidToken, access_token_cipher, b64url_json, unseal
from tests.conftest import create_app
from tests.federation.conftest import Federation
from tests.federation.test_federated_resource import city_idp, register_idp

SECRET = "rs-secret-" + "s" * 40


@pytest.fixture
def fhir_app(federation: Federation) -> Iterator[Flask]:
    """The PHR server, vouched for by the anchor and reachable through the federation."""
    settings = federation.settings
    for service in SERVICES:
        migrations.upgrade(service, settings.database_urls[service.name])
    app = create_app(get_service("fhir"), settings)
    federation_demo.load(federation.anchor.extensions["phr_db"], settings)
    federation.fetcher.mount(settings.urls["fhir"], app)
    yield app
    app.extensions["phr_db"].dispose()


def test_the_phr_server_publishes_its_own_encryption_key(
    federation: Federation, fhir_app: Flask
) -> None:
    chain = federation.resolver().resolve(federation.settings.urls["fhir"])
    published = sealing.encryption_jwk(chain.metadata["oauth_resource"]["jwks"])
    own = sealing.own_key(federation.settings, "FHIR")
    assert published is not None
    assert published == sealing.public_jwk(own)
    assert published["use"] == "enc" and "d" not in published


def test_a_token_sealed_for_server_b_cannot_be_opened_by_server_a(
    federation: Federation, fhir_app: Flask
) -> None:
    server_b = sealing.decryption_key("server-b-" + "b" * 40)
    token = sealing.seal_to("a.b.c", sealing.public_jwk(server_b), sealing.sender_secret(SECRET))
    # B opens it (as any JOSE library would: standard ECDH-ES+A256KW / A256GCM) ...
    assert jwe.decrypt_compact(token, server_b, algorithms=SEALING_ALGS).plaintext == b"a.b.c"
    # ... server A does not, nor does the shared key.
    verifier = fhir_app.extensions["phr_verifier"]
    with pytest.raises(InvalidToken, match="cannot be decrypted"):
        verifier.verify(token)
    with pytest.raises(InvalidToken):
        unseal(token, access_token_cipher(federation.settings.secret("PHR_ACCESS_TOKEN_KEY")))
    resp = fhir_app.test_client().get("/Immunization", headers={"Authorization": "Bearer " + token})
    assert resp.status_code == 401
    # Only the sender's secret re-opens it (the IdP's introspection), not another's.
    assert sealing.open_as_sender(token, sealing.sender_secret(SECRET)) == "a.b.c"
    with pytest.raises(ValueError):
        sealing.open_as_sender(token, sealing.sender_secret("other-" + "o" * 40))


def test_the_idp_finds_keys_through_the_federation_and_falls_back_for_servers_without(
    federation: Federation, fhir_app: Flask
) -> None:
    resolver = federation.resolver()
    keys = RecipientKeys(resolver.resolve)
    fhir = federation.settings.urls["fhir"]
    assert keys.key_for(fhir) == sealing.public_jwk(sealing.own_key(federation.settings, "FHIR"))
    asked = len(federation.fetcher.requests)
    unknown = "http://127.0.0.1:9/fhir-nobody-vouches-for"
    assert keys.key_for(unknown) is None
    assert keys.key_for(unknown) is None and keys.key_for(fhir) is not None
    # Both answers are cached: the unknown server was asked about once.
    assert sum(unknown in r for r in federation.fetcher.requests[asked:]) == 1


@pytest.fixture
def idp_app(federation: Federation, fhir_app: Flask) -> Iterator[Flask]:
    settings = federation.settings
    prepare(settings)
    app = create_idp(settings)
    app.extensions["idp_federation_resolver"] = federation.resolver()
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "rp-1",
                "redirect_uris": ["https://rp.example.jp/cb"],
                "scope": "openid patient/Immunization.rs",
                "token_endpoint_auth_method": "client_secret_basic",
            },
            SECRET,
        )
        s.add(Person(id="person-1"))
    yield app
    app.extensions["phr_db"].dispose()


def _issue(app: Flask, audience: str) -> str:
    with app.app_context(), app.extensions["phr_db"].session() as s:
        client = ClientView.of(s.get(Client, "rp-1"))
        token, _ = access_token(
            app.extensions["idp"],
            s,
            client,
            audience=audience,
            scope="patient/Immunization.rs",
            person_id="person-1",
        )
    return token


def _basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"rp-1:{SECRET}".encode()).decode()}


def test_the_idp_seals_to_the_servers_key_and_still_introspects_and_revokes(
    federation: Federation, idp_app: Flask
) -> None:
    settings = federation.settings
    token = _issue(idp_app, settings.urls["fhir"])
    header = b64url_json(token.split(".")[0])
    assert header["alg"] == sealing.ALG
    assert header["kid"] == sealing.own_key(settings, "FHIR").kid
    # The PHR server (its own key) reads it.
    fhir_key = sealing.own_key(settings, "FHIR")
    assert unseal(token, fhir_key).count(".") == 2

    client = idp_app.test_client()
    seen = client.post("/introspect", data={"token": token}, headers=_basic()).get_json()
    assert seen["active"] is True and seen["client_id"] == "rp-1"
    assert client.post("/revoke", data={"token": token}, headers=_basic()).status_code == 200
    again = client.post("/introspect", data={"token": token}, headers=_basic()).get_json()
    assert again == {"active": False}


def test_a_server_that_publishes_no_key_gets_the_shared_key(
    federation: Federation, idp_app: Flask
) -> None:
    # The consent service is not vouched for here (only the PHR server is mounted): the IdP
    # seals its tokens under the shared PHR_ACCESS_TOKEN_KEY, as before per-server keys.
    consent = federation.settings.urls["consent"]
    federation.fetcher.apps.pop(consent, None)
    token = _issue(idp_app, consent)
    assert b64url_json(token.split(".")[0])["alg"] == "dir"
    shared = access_token_cipher(federation.settings.secret("PHR_ACCESS_TOKEN_KEY"))
    assert unseal(token, shared).count(".") == 2


def test_a_federated_idp_cannot_mint_a_connectors_token(
    federation: Federation, fhir_app: Flask
) -> None:
    """Another provider's client-credentials token naming a municipality would be a connector's
    (system/ writes for the whole city): only the home IdP's clients may act for a city."""
    city = city_idp(federation, "city-connector")
    register_idp(federation, city)
    resolver = federation.resolver()
    fhir_app.extensions["phr_verifier"].resolver = lambda: resolver
    with city.app_context(), city.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "fake-connector",
                "grant_types": ["client_credentials"],
                "scope": "system/*.cu",
                "phr_municipality": "072028",
            },
            SECRET,
        )
        s.flush()
        client = ClientView.of(s.get(Client, "fake-connector"))
        token, _ = access_token(
            city.extensions["idp"],
            s,
            client,
            audience=federation.settings.urls["fhir"],
            scope="system/*.cu",
            person_id=None,
        )
    with pytest.raises(InvalidToken, match="municipality"):
        fhir_app.extensions["phr_verifier"].verify(token)
    resp = fhir_app.test_client().get("/Patient", headers={"Authorization": "Bearer " + token})
    assert resp.status_code == 401
