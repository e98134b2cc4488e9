"""private_key_jwt with a client's `jwks_uri`: the IdP fetches the client's keys from it, keeps
them, and fetches again when an assertion names a key id it has not seen (the client rotated
its key), at most every few seconds; keys it never published are refused."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey

from idp import client_auth
from tests.browser import live_server

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class KeyHost:
    """The client's own web server publishing its JWKS, counting fetches."""

    def __init__(self) -> None:
        self.published: list[ECKey] = []
        self.fetches = 0
        self.broken = False
        self.url = ""

    def publish(self, kid: str) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
        self.published.append(key)
        return key


@pytest.fixture
def host() -> Iterator[KeyHost]:
    h = KeyHost()
    app = Flask("client_key_host")

    @app.get("/jwks.json")
    def jwks():  # type: ignore[no-untyped-def]
        h.fetches += 1
        if h.broken:
            return "not json", 500
        keys = [{**k.as_dict(private=False), "alg": "ES256", "use": "sig"} for k in h.published]
        return app.response_class(json.dumps({"keys": keys}), mimetype="application/json")

    with live_server(app) as url:
        h.url = url + "/jwks.json"
        yield h


def _token(idp_app: Flask, client_id: str, key: ECKey) -> Any:
    token_url = idp_app.extensions["idp"].endpoint("/token")
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now,
              "exp": now + 60, "jti": str(uuid.uuid4())}  # fmt: skip
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
    return idp_app.test_client().post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        },
    )


def _register(register, host: KeyHost, client_id: str) -> None:  # type: ignore[no-untyped-def]
    register(
        client_id,
        secret=None,
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri=host.url,
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="system/*.write",
    )


def test_keys_come_from_jwks_uri_and_a_rotated_key_is_fetched(
    idp_app: Flask, register, host: KeyHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_auth, "JWKS_MIN_REFETCH", 0.5)
    _register(register, host, "jwks-uri-client")
    k1 = host.publish("k1")

    first = _token(idp_app, "jwks-uri-client", k1)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["access_token"]
    assert host.fetches == 1
    assert _token(idp_app, "jwks-uri-client", k1).status_code == 200
    assert host.fetches == 1  # cached

    # The client rotates: publishes k2 and signs with it. The IdP has not seen k2: it fetches.
    time.sleep(0.6)
    k2 = host.publish("k2")
    assert _token(idp_app, "jwks-uri-client", k2).status_code == 200
    assert host.fetches == 2

    # A key the client never published (an attacker's, with a new kid) is refused, and asking
    # again at once does not make the IdP fetch again (no fetch storm on unknown kids).
    rogue = ECKey.generate_key("P-256", parameters={"kid": "k3"}, private=True)
    refused = _token(idp_app, "jwks-uri-client", rogue)
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
    fetched = host.fetches
    assert _token(idp_app, "jwks-uri-client", rogue).status_code == 401
    assert host.fetches == fetched

    # A forged assertion under a published kid fails the signature check.
    forged = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    assert _token(idp_app, "jwks-uri-client", forged).status_code == 401


def test_unreachable_or_malformed_jwks_uri_is_invalid_client(
    idp_app: Flask, register, host: KeyHost
) -> None:
    _register(register, host, "jwks-uri-broken")
    key = host.publish("k1")
    host.broken = True
    resp = _token(idp_app, "jwks-uri-broken", key)
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["error"] == "invalid_client"
    assert "jwks_uri" in body["error_description"]


def test_jwks_uri_must_be_https_off_loopback(idp_app: Flask, register) -> None:
    register(
        "jwks-uri-plain",
        secret=None,
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="http://keys.example.com/jwks.json",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="system/*.write",
    )
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    resp = _token(idp_app, "jwks-uri-plain", key)
    assert resp.status_code == 401
    assert "https" in resp.get_json()["error_description"]
