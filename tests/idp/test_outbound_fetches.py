"""The IdP's own fetches of URLs a client supplied (its `jwks_uri`, `sector_identifier_uri`,
`backchannel_logout_uri`, an automatically registered app's entity id) go through
phr_core.outbound: in production none of them reaches a loopback or private address, even one
given as https or as a host name that resolves there. The witness listener at that address
receives nothing."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey

from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from idp.endpoints import logout
from launcher.cli import main
from phr_core.config import Settings, load_settings
from tests.listener import listening

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _production(idp_app: Flask, migrated: Settings) -> Settings:
    """The same IdP, told it runs in production (only the address policy matters here)."""
    prod = load_settings({**migrated.environ, "PHR_ENV": "production"})
    idp_app.extensions["idp"] = dataclasses.replace(idp_app.extensions["idp"], settings=prod)
    return prod


def _loopback_name() -> str:
    """A host name (not `localhost`, which is refused by name) that resolves to loopback."""
    name = socket.gethostname()
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    except OSError:
        addrs = set()
    if not addrs or not all(a.startswith("127.") or a == "::1" for a in addrs):
        pytest.skip(f"this machine's name {name!r} does not resolve to loopback only")
    return name


def test_a_client_jwks_uri_at_an_internal_address_is_not_fetched_in_production(
    idp_app: Flask, migrated: Settings, register: Callable[..., dict]
) -> None:
    _production(idp_app, migrated)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    with listening() as witness:
        register(
            "internal-keys",
            secret=None,
            token_endpoint_auth_method="private_key_jwt",
            jwks_uri=f"https://127.0.0.1:{witness.port}/jwks.json",
            grant_types=["client_credentials"],
            redirect_uris=[],
            scope="system/*.write",
        )
        now = int(time.time())
        claims = {"iss": "internal-keys", "sub": "internal-keys",
                  "aud": idp_app.extensions["idp"].endpoint("/token"), "iat": now,
                  "exp": now + 60, "jti": str(uuid.uuid4())}  # fmt: skip
        resp = idp_app.test_client().post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key),
            },
        )
        assert resp.status_code == 401
        assert resp.get_json()["error"] == "invalid_client"
        assert witness.connections == 0


def test_a_sector_identifier_uri_at_an_internal_address_is_not_fetched_in_production(
    idp_app: Flask, migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    made = CliRunner().invoke(main, ["idp", "registration-token", "--uses", "2"])
    assert made.exit_code == 0, made.output
    _production(idp_app, migrated)
    with listening() as witness:
        resp = idp_app.test_client().post(
            "/register",
            json={
                "redirect_uris": ["https://a.example/cb"],
                "sector_identifier_uri": f"https://127.0.0.1:{witness.port}/sector.json",
                "purpose": "記録を見るため",
            },
            headers={"Authorization": f"Bearer {made.output.strip()}"},
        )
        assert resp.status_code == 400
        assert resp.get_json()["error"] == "invalid_client_metadata"
        assert witness.connections == 0


def test_a_backchannel_logout_uri_at_an_internal_address_is_not_called_in_production(
    idp_app: Flask, migrated: Settings
) -> None:
    prod_ctx = dataclasses.replace(
        idp_app.extensions["idp"],
        settings=load_settings({**migrated.environ, "PHR_ENV": "production"}),
    )
    with listening() as witness:
        for uri in (f"https://127.0.0.1:{witness.port}/bc", f"http://[::1]:{witness.port}/bc"):
            logout._deliver(prod_ctx, "rp-1", uri, "logout-token")
        assert witness.connections == 0
        # In development the same delivery is made (everything runs on loopback there).
        logout._deliver(idp_app.extensions["idp"], "rp-1", witness.url + "/bc", "logout-token")
        assert witness.connections == 1


def test_an_entity_id_whose_name_resolves_to_loopback_is_not_fetched_in_production(
    migrated: Settings,
) -> None:
    name = _loopback_name()
    prod = load_settings({**migrated.environ, "PHR_ENV": "production"})
    with listening() as witness:
        entity_id = f"https://{name}:{witness.port}"
        anchors = {"https://anchor.example.jp": {"keys": []}}
        for fetcher in (UrlFetcher.for_settings(prod), UrlFetcher(allow_http_loopback=False)):
            with pytest.raises(FederationError) as refused:
                Resolver(fetcher, anchors).resolve(entity_id)
            assert refused.value.reason == "unreachable"
        assert witness.connections == 0
