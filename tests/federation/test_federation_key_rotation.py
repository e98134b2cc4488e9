"""`phr federation rotate-key` (issue 20): a service's entity configuration publishes its new
and old federation keys, the authority's statements name both, chains built before the
rotation stay valid, and after `--retire` the old key vouches for nothing."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from federation import jose, keys
from federation.cli import RETIRE_AFTER_S
from federation.entity import statement
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from federation.models import IssuedTrustMark, Subordinate
from launcher.cli import main
from phr_core import key_rotation
from tests.federation import test_token_sealing as sealing_tests
from tests.federation.conftest import Federation

fhir_app = sealing_tests.fhir_app  # the PHR server, vouched for by the anchor


@pytest.fixture
def cli(federation: Federation, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for k, v in federation.settings.environ.items():
        monkeypatch.setenv(k, v)
    return CliRunner()


def _run(cli: CliRunner, *args: str) -> str:
    out = cli.invoke(main, ["federation", *args])
    assert out.exit_code == 0, out.output
    return out.output


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _statement_about(fed: Federation, entity_id: str) -> statement.EntityStatement:
    resp = fed.anchor.test_client().get("/fetch", query_string={"sub": entity_id})
    return statement.parse(resp.get_data(as_text=True), what="subordinate statement")


def test_a_services_key_rotates_without_breaking_chains(
    federation: Federation, fhir_app: Flask, cli: CliRunner
) -> None:
    settings = federation.settings
    fhir = settings.urls["fhir"]
    before = federation.resolver()
    old_chain = before.resolve(fhir)
    old_ec = old_chain.jwts[0]
    old_key = keys.entity_key(settings, "fhir")
    old_kid = old_key.kid

    said = _run(cli, "rotate-key", "fhir")
    new_kid = keys.entity_key(settings, "fhir").kid
    assert new_kid != old_kid and f"now signing with {new_kid}" in said
    # The configuration is signed with the new key and publishes both ...
    page = fhir_app.test_client().get(statement.WELL_KNOWN).get_data(as_text=True)
    ec = statement.parse(page, what="entity configuration")
    assert jose.peek(ec.jwt)[0]["kid"] == new_kid
    assert [k["kid"] for k in ec.jwks["keys"]] == [new_kid, old_kid]
    # ... the authority's statement about it names both (re-signed at each fetch) ...
    about = _statement_about(federation, fhir)
    assert [k["kid"] for k in about.jwks["keys"]] == [new_kid, old_kid]
    # ... a fresh resolution succeeds, and the chain cached before still serves.
    assert federation.resolver().resolve(fhir, fresh=True).metadata.resource is not None
    assert before.resolve(fhir) is old_chain
    # A configuration signed before the rotation still verifies against today's statement.
    jose.verify(old_ec, about.jwks, statement.TYP, what="old ec")

    refused = cli.invoke(main, ["federation", "rotate-key", "fhir", "--retire"])
    assert refused.exit_code == 1 and "wait, or use --force" in refused.output
    _age(settings.secrets_dir / keys.secret_name("fhir"), RETIRE_AFTER_S + 1)
    _run(cli, "rotate-key", "fhir", "--retire")
    about = _statement_about(federation, fhir)
    assert [k["kid"] for k in about.jwks["keys"]] == [new_kid]
    assert federation.resolver().resolve(fhir, fresh=True).metadata.resource is not None
    # The old key vouches for nothing any more.
    old_signed = jose.sign({"iss": fhir, "sub": fhir, "iat": 1, "exp": 2}, old_key, statement.TYP)
    with pytest.raises(FederationError, match="not a trusted one"):
        jose.verify(old_signed, about.jwks, statement.TYP, what="old", now=1)


def test_the_anchors_own_key_rotates_with_the_trust_anchor_file(
    federation: Federation, fhir_app: Flask, cli: CliRunner
) -> None:
    settings = federation.settings
    fhir = settings.urls["fhir"]
    _run(cli, "export-anchor")
    anchor_file = Path(settings.option("PHR_FEDERATION_TRUST_ANCHOR_FILE"))
    _run(cli, "mark", "issue", fhir)
    old_kid = keys.entity_key(settings, "federation").kid

    old_anchors = json.loads(anchor_file.read_text(encoding="utf-8"))

    # Staged: published in the configuration and the anchor file, signing nothing yet, so
    # services still holding the old anchor file resolve fresh chains meanwhile.
    said = _run(cli, "rotate-key", "federation")
    assert "staged" in said and "trust anchor keys written" in said
    staged = json.loads(anchor_file.read_text(encoding="utf-8"))[federation.anchor_id]["keys"]
    new_kid = staged[1]["kid"]
    assert [k["kid"] for k in staged] == [old_kid, new_kid]
    assert keys.entity_key(settings, "federation").kid == old_kid
    assert Resolver(federation.fetcher, old_anchors).resolve(fhir).metadata.resource
    refused = cli.invoke(main, ["federation", "rotate-key", "federation", "--retire"])
    assert refused.exit_code == 1 and "--promote it first" in refused.output

    # Promoted (once every service has the new file): statements are signed with the new key.
    _run(cli, "rotate-key", "federation", "--promote")
    anchors = json.loads(anchor_file.read_text(encoding="utf-8"))
    assert [k["kid"] for k in anchors[federation.anchor_id]["keys"]] == [new_kid, old_kid]
    chain = Resolver(federation.fetcher, anchors).resolve(fhir)
    assert chain.metadata.resource is not None
    assert jose.peek(_statement_about(federation, fhir).jwt)[0]["kid"] == new_kid
    with pytest.raises(FederationError):  # why the file must reach every service first
        Resolver(federation.fetcher, old_anchors).resolve(fhir)

    # Marks signed with the old key hold the retirement back until re-issued (the clock moved
    # on by the overlap: the rotation and the mark issued before it are that much older).
    _age(settings.secrets_dir / keys.secret_name("federation"), RETIRE_AFTER_S + 1)
    with federation.anchor.extensions["phr_db"].session() as s:
        for row in s.scalars(select(IssuedTrustMark)):
            row.issued_at = row.issued_at - timedelta(seconds=RETIRE_AFTER_S + 60)
    held = cli.invoke(main, ["federation", "rotate-key", "federation", "--retire"])
    assert held.exit_code == 1 and "re-issue them" in held.output
    _run(cli, "mark", "revoke", fhir)
    _run(cli, "rotate-key", "federation", "--retire")
    anchors = json.loads(anchor_file.read_text(encoding="utf-8"))
    assert [k["kid"] for k in anchors[federation.anchor_id]["keys"]] == [new_kid]
    assert Resolver(federation.fetcher, anchors).resolve(fhir).metadata.resource is not None


def test_a_service_its_superior_vouches_for_elsewhere_is_staged_first(
    federation: Federation, fhir_app: Flask, cli: CliRunner
) -> None:
    """The authority here does not vouch for the PHR server (its superior runs elsewhere): the
    new key is only published until that superior has registered it, then promoted."""
    settings = federation.settings
    fhir = settings.urls["fhir"]
    with federation.anchor.extensions["phr_db"].session() as s:
        registered = s.get(Subordinate, fhir)
        types, policy = list(registered.entity_types), registered.metadata_policy
    federation.remove_subordinate(federation.anchor, fhir)
    old_kid = keys.entity_key(settings, "fhir").kid

    said = _run(cli, "rotate-key", "fhir")
    assert "staged" in said and f"phr federation add {fhir}" in said
    assert keys.entity_key(settings, "fhir").kid == old_kid
    # The superior registers it again, with the keys it publishes (both) ...
    published = keys.published_jwks(settings, "fhir")
    federation.add_subordinate(
        federation.anchor, fhir, published, entity_types=types, metadata_policy=policy
    )
    assert federation.resolver().resolve(fhir, fresh=True).metadata.resource is not None
    # ... and the promoted key signs a configuration the federation accepts.
    _run(cli, "rotate-key", "fhir", "--promote")
    new_kid = keys.entity_key(settings, "fhir").kid
    assert new_kid != old_kid and new_kid in {k["kid"] for k in published["keys"]}
    assert federation.resolver().resolve(fhir, fresh=True).metadata.resource is not None


def test_promote_without_a_staged_key_is_a_plain_error_even_for_an_empty_secret(
    federation: Federation, cli: CliRunner
) -> None:
    path = key_rotation.secret_file(federation.settings, keys.secret_name("fhir"))
    kept = path.read_text(encoding="utf-8")
    try:
        for content in (kept, ""):  # a key that signs already; nothing at all
            path.write_text(content, encoding="utf-8")
            out = cli.invoke(main, ["federation", "rotate-key", "fhir", "--promote"])
            assert out.exit_code == 1, out.output
            assert "has no staged key to promote" in out.output
            assert isinstance(out.exception, SystemExit)  # no traceback (was an IndexError)
            assert path.read_text(encoding="utf-8") == content  # nothing rewritten
    finally:
        path.write_text(kept, encoding="utf-8")
