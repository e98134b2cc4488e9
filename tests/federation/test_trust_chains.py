"""Trust chains: good chains with and without an intermediate (a prefecture), and every bad
chain refused with its own reason."""

from __future__ import annotations

import time

import pytest

from federation import errors, jose, trust_marks
from federation.errors import FederationError
from tests.conftest import free_port
from tests.federation.conftest import Federation, new_key


def refused(fed: Federation, entity_id: str, **kwargs: object) -> FederationError:
    with pytest.raises(FederationError) as info:
        fed.resolver(**kwargs).resolve(entity_id)  # type: ignore[arg-type]
    return info.value


# --- good chains -------------------------------------------------------------------------------


def test_app_directly_below_the_anchor_gets_policy_applied_metadata(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)

    chain = federation.resolver().resolve(app.entity_id)

    assert chain.trust_anchor == federation.anchor_id
    assert [s.iss for s in chain.statements] == [
        app.entity_id,
        federation.anchor_id,
        federation.anchor_id,
    ]
    rp = chain.metadata["openid_relying_party"]
    assert rp["subject_type"] == "pairwise"  # `value` from the anchor's policy
    assert rp["grant_types"] == ["authorization_code"]  # `default`
    assert rp["id_token_signed_response_alg"] == "ES256"
    assert rp["redirect_uris"] == [app.entity_id + "/callback"]
    assert chain.exp == min(s.exp for s in chain.statements)


def test_app_below_a_prefecture_combines_both_policies(federation: Federation) -> None:
    pref, pref_id = federation.authority(hints=[federation.anchor_id], name="fukushima")
    federation.add_subordinate(
        federation.anchor, pref_id, federation.authority_jwks(pref), intermediate=True
    )
    app = federation.leaf(superior=pref_id)
    # The prefecture narrows the anchor's rules: refresh tokens are not allowed below it.
    narrower = {
        "openid_relying_party": {
            "grant_types": {"subset_of": ["authorization_code"]},
            "contacts": {"add": ["phr-help@pref.fukushima.example.jp"]},
        }
    }
    federation.add_subordinate(pref, app.entity_id, app.jwks, metadata_policy=narrower)
    app.metadata["openid_relying_party"]["grant_types"] = ["authorization_code", "refresh_token"]

    chain = federation.resolver().resolve(app.entity_id)

    assert [s.iss for s in chain.statements] == [
        app.entity_id,
        pref_id,
        federation.anchor_id,
        federation.anchor_id,
    ]
    rp = chain.metadata["openid_relying_party"]
    assert rp["grant_types"] == ["authorization_code"]
    assert rp["contacts"] == ["phr-help@pref.fukushima.example.jp"]
    assert rp["subject_type"] == "pairwise"  # the anchor's rule still holds below the prefecture


def test_chains_are_cached_until_they_expire(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    resolver = federation.resolver()
    first = resolver.resolve(app.entity_id)
    fetched = len(federation.fetcher.requests)

    assert resolver.resolve(app.entity_id) is first
    assert len(federation.fetcher.requests) == fetched  # no fetch while the chain is valid
    assert resolver.resolve(app.entity_id, fresh=True) is not first


# --- bad chains: each refused with its own reason ---------------------------------------------


def test_expired_entity_configuration_is_refused(federation: Federation) -> None:
    app = federation.leaf(lifetime_s=-3600)
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    assert refused(federation, app.entity_id).reason == errors.EXPIRED


def test_expired_subordinate_statement_is_refused_even_from_the_cache(
    federation: Federation,
) -> None:
    app = federation.leaf(lifetime_s=24 * 3600)
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    clock = [time.time()]
    resolver = federation.resolver(clock=lambda: clock[0])
    resolver.resolve(app.entity_id)

    clock[0] += 2 * 3600  # the anchor's statements live one hour
    with pytest.raises(FederationError) as info:
        resolver.resolve(app.entity_id)
    assert info.value.reason == errors.EXPIRED


def test_configuration_signed_with_a_key_the_superior_does_not_vouch_for(
    federation: Federation,
) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, jose.public_jwks(new_key()))
    err = refused(federation, app.entity_id)
    assert err.reason == errors.BAD_SIGNATURE
    assert "key from" in err.detail


def test_forged_self_signature_is_refused(federation: Federation) -> None:
    app = federation.leaf()
    app.signing_key = new_key()  # publishes one key, signs with another
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    assert refused(federation, app.entity_id).reason == errors.BAD_SIGNATURE


def test_anchor_with_other_keys_than_configured_is_refused(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    from federation.entity.trust_chain import Resolver

    wrong = Resolver(federation.fetcher, {federation.anchor_id: jose.public_jwks(new_key())})
    with pytest.raises(FederationError) as info:
        wrong.resolve(app.entity_id)
    assert info.value.reason == errors.BAD_SIGNATURE


def test_chain_to_an_anchor_we_do_not_know_is_refused(federation: Federation) -> None:
    other, other_id = federation.authority(hints=[], name="elsewhere")
    app = federation.leaf(superior=other_id)
    federation.add_subordinate(other, app.entity_id, app.jwks)
    err = refused(federation, app.entity_id)
    assert err.reason == errors.UNKNOWN_ANCHOR
    assert err.protocol_error == "invalid_trust_anchor"


def test_metadata_policy_violation_is_refused(federation: Federation) -> None:
    app = federation.leaf()
    app.metadata["openid_relying_party"]["token_endpoint_auth_method"] = "client_secret_basic"
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    err = refused(federation, app.entity_id)
    assert err.reason == errors.POLICY_VIOLATION
    assert "token_endpoint_auth_method" in err.detail
    assert err.protocol_error == "invalid_metadata"


def test_intermediate_policy_contradicting_the_anchor_is_refused(federation: Federation) -> None:
    pref, pref_id = federation.authority(hints=[federation.anchor_id], name="pref")
    federation.add_subordinate(
        federation.anchor, pref_id, federation.authority_jwks(pref), intermediate=True
    )
    app = federation.leaf(superior=pref_id)
    wider = {"openid_relying_party": {"subject_type": {"value": "public"}}}
    federation.add_subordinate(pref, app.entity_id, app.jwks, metadata_policy=wider)
    err = refused(federation, app.entity_id)
    assert err.reason == errors.POLICY_VIOLATION
    assert "subject_type" in err.detail


def test_removed_entity_is_refused_at_once_by_a_fresh_resolution(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    resolver = federation.resolver()
    resolver.resolve(app.entity_id)

    federation.remove_subordinate(federation.anchor, app.entity_id)

    with pytest.raises(FederationError) as info:
        resolver.resolve(app.entity_id, fresh=True)
    assert info.value.reason == errors.NOT_FOUND
    assert "no longer" in info.value.detail


def test_never_registered_entity_is_refused(federation: Federation) -> None:
    app = federation.leaf()
    assert refused(federation, app.entity_id).reason == errors.NOT_FOUND


def test_loop_between_authorities_is_refused(federation: Federation) -> None:
    # Two authorities naming each other as superior, neither reaching the anchor.
    a_url, b_url = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    a, a_id = federation.authority(hints=[b_url], name="a", url=a_url)
    b, b_id = federation.authority(hints=[a_url], name="b", url=b_url)
    federation.add_subordinate(a, b_id, federation.authority_jwks(b), intermediate=True)
    federation.add_subordinate(b, a_id, federation.authority_jwks(a), intermediate=True)
    app = federation.leaf(superior=a_id)
    federation.add_subordinate(a, app.entity_id, app.jwks)
    err = refused(federation, app.entity_id)
    assert err.reason == errors.LOOP
    assert err.detail.count(a_id) == 2


def test_deeper_than_the_anchor_allows_is_refused(federation: Federation) -> None:
    pref, pref_id = federation.authority(hints=[federation.anchor_id], name="pref")
    city, city_id = federation.authority(hints=[pref_id], name="city")
    federation.add_subordinate(
        federation.anchor, pref_id, federation.authority_jwks(pref), intermediate=True
    )  # max_path_length 1: the prefecture, then leaves only
    federation.add_subordinate(pref, city_id, federation.authority_jwks(city), intermediate=True)
    app = federation.leaf(superior=city_id)
    federation.add_subordinate(city, app.entity_id, app.jwks)
    assert refused(federation, app.entity_id).reason == errors.PATH_TOO_LONG


# --- trust marks ---------------------------------------------------------------------------


def test_certified_app_trust_mark_is_verified_and_its_revocation_seen(
    federation: Federation,
) -> None:
    from federation.authority import store

    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    with federation.anchor.extensions["phr_db"].session() as s:
        store.record_mark(s, trust_marks.CERTIFIED_PHR_APP, app.entity_id, 3600)
    resp = federation.anchor.test_client().get(
        "/trust_mark",
        query_string={"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "sub": app.entity_id},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    mark = resp.get_data(as_text=True)
    app.trust_marks = [{"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "trust_mark": mark}]

    chain = federation.resolver(check_trust_mark_status=True).resolve(app.entity_id)
    assert chain.has_trust_mark(trust_marks.CERTIFIED_PHR_APP)
    assert chain.trust_mark_entries == app.trust_marks
    resolved = federation.anchor.test_client().get(
        "/resolve", query_string={"sub": app.entity_id, "trust_anchor": federation.anchor_id}
    )
    assert jose.peek(resolved.get_data(as_text=True))[1]["trust_marks"] == app.trust_marks

    with federation.anchor.extensions["phr_db"].session() as s:
        assert store.revoke_marks(s, app.entity_id, trust_marks.CERTIFIED_PHR_APP) == 1
    chain = federation.resolver(check_trust_mark_status=True).resolve(app.entity_id)
    assert not chain.has_trust_mark(trust_marks.CERTIFIED_PHR_APP)


def test_trust_mark_from_an_issuer_the_anchor_does_not_name_is_ignored(
    federation: Federation,
) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    rogue = trust_marks.issue(app.entity_id, app.key, app.entity_id)  # self-certified
    app.trust_marks = [{"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "trust_mark": rogue}]
    chain = federation.resolver().resolve(app.entity_id)
    assert not chain.has_trust_mark(trust_marks.CERTIFIED_PHR_APP)


def test_intermediate_signing_with_a_key_its_superior_never_vouched_for(
    federation: Federation,
) -> None:
    """The prefecture's configuration is signed with its registered key but also lists an
    extra one, which it then uses for its statement about the app: refused."""
    from flask import Flask, Response

    from federation.entity import statement

    registered, extra = new_key(), new_key()
    pref_id = f"http://127.0.0.1:{free_port()}"
    app = federation.leaf(superior=pref_id)
    rogue = Flask("rogue-prefecture")

    @rogue.get(statement.WELL_KNOWN)
    def configuration() -> Response:
        token = statement.sign_configuration(
            pref_id,
            registered,
            {"federation_entity": {"federation_fetch_endpoint": pref_id + "/fetch"}},
            authority_hints=[federation.anchor_id],
        )
        _, claims = jose.peek(token)
        claims["jwks"] = jose.public_jwks(registered, extra)
        return Response(jose.sign(claims, registered, statement.TYP), mimetype=statement.MEDIA_TYPE)

    @rogue.get("/fetch")
    def fetch() -> Response:
        token = statement.sign_subordinate(pref_id, extra, app.entity_id, app.jwks)
        return Response(token, mimetype=statement.MEDIA_TYPE)

    federation.fetcher.mount(pref_id, rogue)
    federation.add_subordinate(
        federation.anchor, pref_id, jose.public_jwks(registered), intermediate=True
    )
    err = refused(federation, app.entity_id)
    assert err.reason == errors.BAD_SIGNATURE
    assert f"statement by {pref_id}" in err.detail


def test_naming_constraints_refuse_entity_ids_outside_the_permitted_names(
    federation: Federation,
) -> None:
    app = federation.leaf()
    federation.add_subordinate(
        federation.anchor,
        app.entity_id,
        app.jwks,
        constraints={"naming_constraints": {"permitted": [".lg.jp"]}},
    )
    err = refused(federation, app.entity_id)
    assert err.reason == errors.NAMING

    federation.add_subordinate(
        federation.anchor,
        app.entity_id,
        app.jwks,
        constraints={"naming_constraints": {"permitted": ["127.0.0.1"], "excluded": [".lg.jp"]}},
    )
    assert federation.resolver().resolve(app.entity_id).entity_id == app.entity_id


def test_entity_types_a_superior_does_not_allow_are_dropped(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(
        federation.anchor,
        app.entity_id,
        app.jwks,
        constraints={"allowed_entity_types": ["oauth_resource"]},
    )
    app.metadata["federation_entity"] = {"organization_name": "App maker"}
    chain = federation.resolver().resolve(app.entity_id)
    assert set(chain.metadata) == {"federation_entity"}
