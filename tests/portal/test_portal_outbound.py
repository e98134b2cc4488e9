"""The portal's requests to an IdP (discovery, keys, token, revocation) go to URLs a federation
member's discovery document names, not our configuration: they go through phr_core.outbound, so
in production none of them reaches a loopback or private address. The witness listener there
receives nothing; in development (everything on loopback) the same fetch works."""

from __future__ import annotations

import pytest
from flask import Flask

from phr_core.config import load_settings
from portal import idp_client
from tests.conftest import make_environ
from tests.listener import listening


def _app(tmp_path, production: bool) -> Flask:  # type: ignore[no-untyped-def]
    env = make_environ(tmp_path, f"sqlite:///{tmp_path}/x.db")
    if production:
        env["PHR_ENV"] = "production"
        env["PHR_CONSENT_CLIENT_SECRET"] = "s" * 48  # the portal's own client secret
    app = Flask("portal-outbound")
    app.extensions["phr_settings"] = load_settings(env)
    return app


def test_a_members_endpoints_at_an_internal_address_are_not_fetched_in_production(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    with listening() as witness, _app(tmp_path, production=True).app_context():
        idp_client.forget_metadata()
        with pytest.raises(idp_client.SignInError) as refused:
            idp_client.fetch_json(witness.url + "/.well-known/openid-configuration")
        assert refused.value.status == 503
        home = idp_client.settings().issuer
        # Authlib's token request, with the home IdP's client authentication, at an endpoint
        # a discovery document named: the same fetcher refuses it.
        with pytest.raises(idp_client.SignInError) as refused:
            idp_client.token_request(home, witness.url + "/token", "x")
        assert refused.value.status == 503
        assert witness.connections == 0


def test_in_development_the_same_fetch_reaches_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with (
        listening(body=b'{"issuer": "x"}') as idp,
        _app(tmp_path, production=False).app_context(),
    ):
        idp_client.forget_metadata()
        assert idp_client.fetch_json(idp.url + "/.well-known/openid-configuration") == {
            "issuer": "x"
        }
        assert idp.connections == 1
        # Authlib's token request goes through the same fetcher and reaches it too.
        issuer = idp_client.settings().issuer
        assert idp_client.token_request(issuer, idp.url + "/token", "x") == {"issuer": "x"}
        assert idp.connections == 2
