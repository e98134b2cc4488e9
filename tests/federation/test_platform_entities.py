"""The platform's own services are federation entities: each publishes a configuration signed
with its own federation key, and in development the anchor's demo data vouches for them, so
each one's chain resolves to the anchor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from federation import demo, jose, keys
from federation.entity import statement
from federation.entity.trust_chain import Resolver
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from tests.federation.conftest import WsgiFetcher

ENTITY_TYPE = {
    "idp": "openid_provider",
    "fhir": "oauth_resource",
    "consent": "openid_relying_party",
    "connector": "oauth_client",
}


@pytest.fixture
def platform(app_factory: Callable[[str], Flask], migrated: Settings) -> dict[str, Flask]:
    settings = load_settings({**migrated.environ, "PHR_IDP_GRANT_STORE": "local"})
    from idp.app import prepare

    prepare(settings)
    return {name: app_factory(name) for name in ["federation", *ENTITY_TYPE]}


def test_every_service_chains_to_the_development_anchor(
    platform: dict[str, Flask], migrated: Settings
) -> None:
    fetcher = WsgiFetcher()
    for name, app in platform.items():
        fetcher.mount(migrated.urls[name], app)
    db = Database(migrated.database_urls["federation"])
    try:
        assert demo.load(db, migrated) == 4
        assert demo.load(db, migrated) == 0  # idempotent
    finally:
        db.dispose()
    resolver = Resolver(fetcher, keys.trust_anchors(migrated))
    assert list(resolver.trust_anchors) == [migrated.urls["federation"]]

    for name, etype in ENTITY_TYPE.items():
        resp = platform[name].test_client().get(statement.WELL_KNOWN)
        assert resp.mimetype == statement.MEDIA_TYPE
        ec = statement.parse(resp.get_data(as_text=True), what=name)
        assert ec.jwks == jose.public_jwks(keys.entity_key(migrated, name))
        assert ec.authority_hints == [migrated.urls["federation"]]

        chain = resolver.resolve(migrated.urls[name])
        assert etype in chain.metadata, name
    idp_md = resolver.resolve(migrated.issuer).metadata["openid_provider"]
    assert idp_md["subject_types_supported"] == ["pairwise"]


def test_each_service_has_its_own_federation_key(migrated: Settings) -> None:
    kids = {keys.entity_key(migrated, n).kid for n in [*ENTITY_TYPE, "federation"]}
    assert len(kids) == 5


def test_production_refuses_development_federation_keys(migrated: Settings) -> None:
    from phr_core.services import SERVICES

    keys.entity_key(migrated, "idp")  # makes the development key file
    prod = load_settings({**migrated.environ, "PHR_ENV": "production"})
    problems = prod.production_problems(SERVICES)
    for name in ("PHR_IDP_FEDERATION_KEY", "PHR_FEDERATION_KEY", "PHR_FHIR_FEDERATION_KEY"):
        assert any(name in p for p in problems), name


def test_a_private_jwk_can_be_the_federation_key(migrated: Settings) -> None:
    import json

    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    env = {**migrated.environ, "PHR_IDP_FEDERATION_KEY": json.dumps(key.as_dict(private=True))}
    loaded = keys.entity_key(load_settings(env), "idp")
    assert loaded.as_dict(private=False)["x"] == key.as_dict(private=False)["x"]
    public_only = {**migrated.environ, "PHR_IDP_FEDERATION_KEY": json.dumps(key.as_dict())}
    from phr_core.config import ConfigError

    with pytest.raises(ConfigError, match="private JWK"):
        keys.entity_key(load_settings(public_only), "idp")
