"""A PHR server accepts access tokens from a second, city-run IdP that chains to the anchor,
with that IdP's subjects namespaced so they cannot stand for another IdP's people; an IdP
outside the federation is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask

from federation import jose
from federation.entity import statement
from idp.app import create_app as create_idp
from idp.app import prepare
from idp.clients import ClientView, upsert_static
from idp.models import Client, Person
from idp.tokens import access_token
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.services import get_service
from phr_core.tokens import InvalidToken
from tests.conftest import create_app, free_port
from tests.federation.conftest import Federation


def city_idp(federation: Federation, name: str) -> Flask:
    """Another OpenID provider with its own issuer, database and federation key, sharing the
    access-token sealing key with the PHR server (see federation/resource.py)."""
    issuer = f"http://127.0.0.1:{free_port()}"
    env = {
        **federation.settings.environ,
        "PHR_ISSUER": issuer,
        "PHR_IDP_DATABASE_URL": f"sqlite:///{federation.tmp_path / (name + '.db')}",
        "PHR_IDP_FEDERATION_KEY": f"{name}-federation-key-" + "k" * 40,
        "PHR_IDP_GRANT_STORE": "local",
    }
    settings = load_settings(env)
    migrations.upgrade(get_service("idp"), settings.database_urls["idp"])
    prepare(settings)
    app = create_idp(settings)
    federation.apps.append(app)
    federation.fetcher.mount(issuer, app)
    return app


def token_from(idp_app: Flask, audience: str) -> str:
    with idp_app.app_context(), idp_app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "city-app",
                "redirect_uris": ["https://app.example.jp/cb"],
                "scope": "openid patient/Immunization.rs",
            },
            "secret-" + "s" * 40,
        )
        if s.get(Person, "person-1") is None:
            s.add(Person(id="person-1"))
        s.flush()
        client = ClientView.of(s.get(Client, "city-app"))
        token, _ = access_token(
            idp_app.extensions["idp"],
            s,
            client,
            audience=audience,
            scope="patient/Immunization.rs",
            person_id="person-1",
        )
    return token


@pytest.fixture
def fhir_app(federation: Federation) -> Iterator[Flask]:
    settings = federation.settings
    migrations.upgrade(get_service("fhir"), settings.database_urls["fhir"])
    app = create_app(get_service("fhir"), settings)
    resolver = federation.resolver()
    app.extensions["phr_verifier"].resolver = lambda: resolver
    yield app
    app.extensions["phr_db"].dispose()


def register_idp(federation: Federation, idp_app: Flask) -> str:
    issuer = idp_app.extensions["idp"].issuer
    ec = statement.parse(
        idp_app.test_client().get(statement.WELL_KNOWN).get_data(as_text=True), what="idp"
    )
    # Added as an OpenID provider (`phr federation add … --type openid_provider`): resource
    # servers accept the tokens of providers the anchor lists as such, and no others.
    federation.add_subordinate(
        federation.anchor, issuer, ec.jwks, entity_types=["openid_provider", "federation_entity"]
    )
    return issuer


def test_token_of_a_federated_city_idp_is_accepted_with_a_namespaced_subject(
    federation: Federation, fhir_app: Flask
) -> None:
    city = city_idp(federation, "city-b")
    issuer = register_idp(federation, city)
    verifier = fhir_app.extensions["phr_verifier"]

    token = verifier.verify(token_from(city, federation.settings.urls["fhir"]))

    assert token.claims["iss"] == issuer
    assert token.subject.startswith(issuer + "#")
    assert token.client_id == "city-app"


def test_token_of_an_idp_outside_the_federation_is_refused(
    federation: Federation, fhir_app: Flask
) -> None:
    rogue = city_idp(federation, "rogue")  # publishes a configuration; nobody vouches for it
    verifier = fhir_app.extensions["phr_verifier"]
    with pytest.raises(InvalidToken, match="outside the federation"):
        verifier.verify(token_from(rogue, federation.settings.urls["fhir"]))
    # and the FHIR API answers 401 for it
    resp = fhir_app.test_client().get(
        "/Immunization",
        headers={"Authorization": "Bearer " + token_from(rogue, federation.settings.urls["fhir"])},
    )
    assert resp.status_code == 401


def test_token_signed_with_keys_other_than_the_chain_says_is_refused(
    federation: Federation, fhir_app: Flask
) -> None:
    city = city_idp(federation, "city-c")
    issuer = register_idp(federation, city)
    impostor = city_idp(federation, "impostor")
    # The impostor claims city-c's issuer but signs with its own keys.
    impostor.extensions["idp"] = dataclasses.replace(
        impostor.extensions["idp"], settings=city.extensions["idp"].settings
    )
    verifier = fhir_app.extensions["phr_verifier"]
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(token_from(impostor, federation.settings.urls["fhir"]))
    assert issuer == city.extensions["idp"].issuer


def test_the_idp_configuration_carries_its_signing_keys(federation: Federation) -> None:
    city = city_idp(federation, "city-d")
    ec = statement.parse(
        city.test_client().get(statement.WELL_KNOWN).get_data(as_text=True), what="idp"
    )
    jose.verify(ec.jwt, ec.jwks, statement.TYP, what="idp")
    assert ec.metadata["openid_provider"]["jwks"] == city.extensions["idp"].keys.jwks()
