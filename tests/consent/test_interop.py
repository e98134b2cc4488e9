"""The real clients the other services built against this API, talking to it over HTTP on
loopback: the PHR server's consent directory and the connector's consent client."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.browser import live_server
from tests.consent.conftest import ATTRIBUTES, CITY, PHR_SCOPES, Tokens

policy = pytest.importorskip("phr_server.policy")
connector_consent = pytest.importorskip("connectors.consent")

SUB = "phr-sub-interop"


class _FixedToken:
    """Stands in for the connector's client-credentials token source (the IdP is not part of
    this test): hands out one token signed by the test issuer."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, resource: str, scope: str | None = None) -> str:
        return self._token


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_phr_server_and_connector_clients(
    consent_app: Flask, client: FlaskClient, tokens: Tokens
) -> None:
    with live_server(consent_app) as base:
        # The connector: a person consents, the city pulls the request and answers it.
        r = client.post(
            f"/api/v1/subjects/{SUB}/municipalities/{CITY}/consent",
            json={"categories": ["mch", "vaccination"], "attributes": ATTRIBUTES},
            headers=tokens.idp,
        )
        assert r.status_code == 201
        connector_token = tokens.mint(
            "consent/linkage", client_id=f"connector-{CITY}", municipality=CITY
        )
        cc = connector_consent.ConsentClient(base, CITY, _FixedToken(connector_token))
        [req] = cc.link_requests()
        assert (req["name"], req["birthdate"], req["address"]) == (
            ATTRIBUTES["name"],
            ATTRIBUTES["birthdate"],
            ATTRIBUTES["address"],
        )
        cc.answer(req["id"], "CODE-INTEROP")
        assert cc.link_requests() == []
        assert cc.codes("mch") == {"CODE-INTEROP"}
        assert cc.codes("immunization") == {"CODE-INTEROP"}
        assert cc.codes("claims") == set()

        # The PHR server: is the grant active, whom may the subject reach; then a revocation.
        gid = client.post(
            "/api/v1/grants",
            json={"subject": SUB, "client_id": "app", "scopes": ["patient/Immunization.rs"]},
            headers=tokens.idp,
        ).json["id"]
        phr_token = tokens.mint(PHR_SCOPES, client_id="phr-server")
        directory = policy.HttpConsentDirectory(base, ttl=0, service_token=lambda: phr_token)
        grant = directory.grant(gid, "unused")
        assert grant.active() and grant.subject == SUB and grant.client_id == "app"
        assert [(p.municipality, p.code, p.relationship) for p in directory.patients(SUB, "x")] == [
            (CITY, "CODE-INTEROP", "self")
        ]
        assert directory.grant("no-such-grant", "unused") is None
        client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
        assert not directory.grant(gid, "unused").active()
