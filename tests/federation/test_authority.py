"""The authority's endpoints and `phr federation` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from federation import jose, trust_marks
from federation.entity import statement
from launcher.cli import main
from tests.federation.conftest import Federation, new_key


def test_anchor_configuration_names_its_endpoints_and_mark_issuer(federation: Federation) -> None:
    resp = federation.anchor.test_client().get("/.well-known/openid-federation")
    assert resp.status_code == 200
    assert resp.mimetype == "application/entity-statement+jwt"
    claims = jose.verify(
        resp.get_data(as_text=True), federation.anchor_jwks(), statement.TYP, what="anchor"
    )
    assert claims["iss"] == claims["sub"] == federation.anchor_id
    assert "authority_hints" not in claims
    fe = claims["metadata"]["federation_entity"]
    assert fe["federation_fetch_endpoint"] == federation.anchor_id + "/fetch"
    assert claims["trust_mark_issuers"] == {trust_marks.CERTIFIED_PHR_APP: [federation.anchor_id]}


def test_fetch_and_list_errors_are_the_spec_json(federation: Federation) -> None:
    client = federation.anchor.test_client()
    assert client.get("/fetch").get_json()["error"] == "invalid_request"
    missing = client.get("/fetch", query_string={"sub": "https://nobody.example.jp"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    app = federation.leaf()
    federation.add_subordinate(
        federation.anchor, app.entity_id, app.jwks, entity_types=["openid_relying_party"]
    )
    assert client.get("/list").get_json() == [app.entity_id]
    assert client.get("/list", query_string={"entity_type": "openid_provider"}).get_json() == []
    assert client.get("/list", query_string={"intermediate": "true"}).get_json() == []


def test_resolve_endpoint_returns_signed_metadata_and_chain(federation: Federation) -> None:
    app = federation.leaf()
    federation.add_subordinate(federation.anchor, app.entity_id, app.jwks)
    client = federation.anchor.test_client()
    resp = client.get(
        "/resolve",
        query_string={
            "sub": app.entity_id,
            "trust_anchor": federation.anchor_id,
            "entity_type": "openid_relying_party",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    claims = jose.verify(
        resp.get_data(as_text=True), federation.anchor_jwks(), "resolve-response+jwt", what="r"
    )
    assert claims["metadata"]["openid_relying_party"]["subject_type"] == "pairwise"
    assert len(claims["trust_chain"]) == 3
    unknown = client.get(
        "/resolve", query_string={"sub": app.entity_id, "trust_anchor": "https://x.example"}
    )
    assert unknown.get_json()["error"] == "invalid_trust_anchor"
    bad = federation.leaf()  # not registered
    refused = client.get(
        "/resolve", query_string={"sub": bad.entity_id, "trust_anchor": federation.anchor_id}
    )
    assert refused.status_code == 404 and refused.get_json()["error"] == "invalid_trust_chain"


def test_trust_mark_status_of_a_mark_not_ours(federation: Federation) -> None:
    forged = trust_marks.issue(federation.anchor_id, new_key(), "https://app.example.jp")
    resp = federation.anchor.test_client().post("/trust_mark_status", data={"trust_mark": forged})
    assert resp.status_code == 404


@pytest.fixture
def cli_env(federation: Federation, monkeypatch: pytest.MonkeyPatch) -> Federation:
    for k, v in federation.settings.environ.items():
        monkeypatch.setenv(k, v)
    return federation


def test_cli_add_list_mark_remove_and_export(cli_env: Federation, tmp_path: Path) -> None:
    fed = cli_env
    runner = CliRunner()
    jwks_file = tmp_path / "jwks.json"
    key = new_key()
    jwks_file.write_text(json.dumps(jose.public_jwks(key)))
    app_id = "https://app.example.jp"

    added = runner.invoke(main, ["federation", "add", app_id, "--jwks", str(jwks_file)])
    assert added.exit_code == 0, added.output
    assert key.kid in added.output
    assert runner.invoke(main, ["federation", "list"]).output.split() == [app_id]
    fetched = fed.anchor.test_client().get("/fetch", query_string={"sub": app_id})
    assert fetched.status_code == 200

    mark = runner.invoke(main, ["federation", "mark", "issue", app_id])
    assert mark.exit_code == 0, mark.output
    claims = jose.verify(mark.output.strip(), fed.anchor_jwks(), trust_marks.TYP, what="mark")
    assert claims["sub"] == app_id
    status = fed.anchor.test_client().post(
        "/trust_mark_status", data={"trust_mark": mark.output.strip()}
    )
    assert jose.peek(status.get_data(as_text=True))[1]["status"] == "active"
    assert "1 trust mark" in runner.invoke(main, ["federation", "mark", "revoke", app_id]).output
    status = fed.anchor.test_client().post(
        "/trust_mark_status", data={"trust_mark": mark.output.strip()}
    )
    assert jose.peek(status.get_data(as_text=True))[1]["status"] == "revoked"

    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    refused = runner.invoke(main, ["federation", "add", app_id, "--jwks", str(private)])
    assert refused.exit_code != 0 and "private key" in refused.output

    assert runner.invoke(main, ["federation", "remove", app_id]).exit_code == 0
    assert fed.anchor.test_client().get("/fetch", query_string={"sub": app_id}).status_code == 404
    again = runner.invoke(main, ["federation", "remove", app_id])
    assert again.exit_code != 0 and "not a current subordinate" in again.output

    out = tmp_path / "anchors.json"
    assert runner.invoke(main, ["federation", "export-anchor", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == {fed.anchor_id: fed.anchor_jwks()}


def test_cli_add_limits_a_phr_server_to_its_municipalities(
    cli_env: Federation, tmp_path: Path
) -> None:
    """`--municipalities` puts a subset_of policy on `phr_municipalities`: a server claiming
    more cities than the anchor gave it resolves to the ones it was given."""
    fed = cli_env
    server = fed.leaf("phr", metadata={})
    server.metadata = {
        "oauth_resource": {
            "resource": server.entity_id + "/fhir",
            "phr_municipalities": ["072010", "072028"],
        }
    }
    runner = CliRunner()
    jwks_file = tmp_path / "server-jwks.json"
    jwks_file.write_text(json.dumps(server.jwks))
    args = ["federation", "add", server.entity_id, "--jwks", str(jwks_file)]
    args += ["--type", "oauth_resource"]
    not_a_server = runner.invoke(main, [*args[:5], "--municipalities", "072010"])
    assert not_a_server.exit_code != 0 and "--type oauth_resource" in not_a_server.output
    bad = runner.invoke(main, [*args, "--municipalities", "72010"])
    assert bad.exit_code != 0 and "72010" in bad.output
    added = runner.invoke(main, [*args, "--municipalities", "072010"])
    assert added.exit_code == 0, added.output
    chain = fed.resolver().resolve(server.entity_id)
    assert chain.metadata["oauth_resource"]["phr_municipalities"] == ["072010"]
