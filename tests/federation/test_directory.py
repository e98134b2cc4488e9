"""The directory of PHR servers: which server holds which municipality's records, found by
listing the anchor (and intermediates) and validating each server's trust chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from federation.directory import ANY_MUNICIPALITY, Directory, home_server
from tests.federation.conftest import Federation, LeafEntity
from tests.federation.test_automatic_registration import idp_app  # noqa: F401 (fixture)
from tests.idp.conftest import basic, register, token_claims  # noqa: F401 (fixture)

HOME = "http://127.0.0.1:1/fhir-home"


def _phr_server(fed: Federation, cities: list[str], *, superior: str | None = None) -> LeafEntity:
    leaf = fed.leaf("phr", superior=superior, metadata={})
    leaf.metadata = {
        "oauth_resource": {
            "resource": leaf.entity_id + "/fhir",
            "authorization_servers": ["http://127.0.0.1:2"],
            "phr_municipalities": cities,
        }
    }
    return leaf


def _vouch(fed: Federation, app: Any, leaf: LeafEntity, policy: dict | None = None) -> None:
    fed.add_subordinate(
        app,
        leaf.entity_id,
        leaf.jwks,
        entity_types=["oauth_resource", "federation_entity"],
        metadata_policy=policy,
    )


def _directory(fed: Federation) -> Directory:
    return Directory(home_server(HOME), fed.fetcher, fed.resolver())


def test_each_city_is_found_at_its_own_server(federation: Federation) -> None:
    a = _phr_server(federation, ["072028"])
    b = _phr_server(federation, ["072010"])
    _vouch(federation, federation.anchor, a)
    _vouch(federation, federation.anchor, b)
    d = _directory(federation)
    assert d.server_for("072028").resource == a.entity_id + "/fhir"
    assert d.server_for("072010").resource == b.entity_id + "/fhir"
    # A city no server names goes to the configured home server.
    assert d.server_for("131016").resource == HOME
    assert d.by_resource(b.entity_id + "/fhir/").entity_id == b.entity_id
    assert d.by_resource("http://127.0.0.1:9/other") is None


def test_servers_below_an_intermediate_are_found(federation: Federation) -> None:
    pref_app, pref_id = federation.authority(hints=[federation.anchor_id], name="pref")
    federation.add_subordinate(
        federation.anchor,
        pref_id,
        federation.authority_jwks(pref_app),
        entity_types=["federation_entity"],
        intermediate=True,
    )
    city = _phr_server(federation, ["072044"], superior=pref_id)
    _vouch(federation, pref_app, city)
    assert _directory(federation).server_for("072044").entity_id == city.entity_id


def test_the_superior_decides_which_cities_a_server_may_claim(federation: Federation) -> None:
    greedy = _phr_server(federation, ["072028", "131016"])
    _vouch(
        federation,
        federation.anchor,
        greedy,
        {"oauth_resource": {"phr_municipalities": {"subset_of": ["072028"]}}},
    )
    d = _directory(federation)
    assert d.server_for("072028").entity_id == greedy.entity_id
    assert d.server_for("131016").resource == HOME  # the claim the anchor did not allow


def test_what_is_not_a_phr_server_or_not_trusted_is_left_out(federation: Federation) -> None:
    consent_api = federation.leaf("consent", metadata={})
    consent_api.metadata = {"oauth_resource": {"resource": consent_api.entity_id + "/api"}}
    _vouch(federation, federation.anchor, consent_api)
    forged = _phr_server(federation, ["072028"])
    _vouch(federation, federation.anchor, forged)
    forged.signing_key = _phr_server(federation, ["x"]).key  # signs with a key nobody vouched for
    servers = _directory(federation).servers()
    assert [s.resource for s in servers] == [HOME]
    assert servers[0].municipalities == (ANY_MUNICIPALITY,)


def test_a_removed_server_drops_out_when_the_directory_lists_again(
    federation: Federation,
) -> None:
    a = _phr_server(federation, ["072028"])
    _vouch(federation, federation.anchor, a)
    d = _directory(federation)
    assert d.server_for("072028").entity_id == a.entity_id
    federation.remove_subordinate(federation.anchor, a.entity_id)
    assert d.server_for("072028").entity_id == a.entity_id  # cached: the chain is still valid
    fresh = d.servers(fresh=True)
    assert [s.resource for s in fresh] == [HOME]


def test_without_a_federation_the_home_server_takes_every_city() -> None:
    d = Directory(home_server(HOME))
    assert d.server_for("072028").resource == HOME
    assert d.servers()[0].serves("999999")


def test_the_idp_issues_tokens_for_any_federated_phr_server(
    federation: Federation,
    idp_app: Flask,  # noqa: F811 (the fixture imported above)
    register: Callable[..., dict],  # noqa: F811
) -> None:
    city_b = _phr_server(federation, ["072010"])
    _vouch(federation, federation.anchor, city_b)
    idp_app.extensions["phr_directory"] = Directory(
        home_server(idp_app.extensions["phr_settings"].urls["fhir"]),
        federation.fetcher,
        federation.resolver(),
    )
    conn = register(
        "connector-072010",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="system/*.write consent/linkage",
        phr_municipality="072010",
    )
    c = idp_app.test_client()
    auth = basic("connector-072010", conn["client_secret"])

    def token(**form: str) -> Any:
        return c.post("/token", data={"grant_type": "client_credentials", **form}, headers=auth)

    ok = token(scope="system/*.write", resource=city_b.entity_id + "/fhir")
    assert ok.status_code == 200, ok.get_json()
    assert token_claims(idp_app, ok.get_json()["access_token"])["aud"] == city_b.entity_id + "/fhir"
    # A resource nobody in the federation vouches for, or scopes that are not a PHR server's.
    stranger = token(scope="system/*.write", resource="http://127.0.0.1:9/fhir")
    assert stranger.status_code == 400 and stranger.get_json()["error"] == "invalid_target"
    wrong = token(scope="consent/linkage", resource=city_b.entity_id + "/fhir")
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_target"
    federation.remove_subordinate(federation.anchor, city_b.entity_id)
    idp_app.extensions["phr_directory"].servers(fresh=True)
    gone = token(scope="system/*.write", resource=city_b.entity_id + "/fhir")
    assert gone.status_code == 400 and gone.get_json()["error"] == "invalid_target"
