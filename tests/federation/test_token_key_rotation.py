"""Rotating a resource server's token decryption key without downtime (issue 20): the new key
is published first (IdPs seal to it once their chain renews), tokens sealed to the old key
still open until it is retired, and after `--retire` they are refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from federation import publish
from federation.authority.policies import CONFIGURATION_LIFETIME_S
from federation.entity import statement
from idp.app import create_app as create_idp
from idp.context import ACCESS_TOKEN_TTL
from idp.sealing import KNOWN_TTL_S
from launcher.cli import main
from phr_core import sealing
from phr_core.config import load_settings
from phr_core.tokens import InvalidToken, access_token_cipher, b64url_json, unseal
from tests.federation import test_token_sealing as sealing_tests
from tests.federation.conftest import Federation

# The PHR server and the IdP of the token-sealing tests, vouched for by the anchor.
fhir_app = sealing_tests.fhir_app
idp_app = sealing_tests.idp_app
_issue = sealing_tests._issue
_basic = sealing_tests._basic


@pytest.fixture
def cli(federation: Federation, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`phr` in the test's environment; running servers read rotated keys at once."""
    for k, v in federation.settings.environ.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sealing, "RELOAD_S", 0.0)
    return CliRunner()


def _kid(token: str) -> str:
    return b64url_json(token.split(".")[0])["kid"]


def _opens(app: Flask, token: str) -> bool:
    """The running PHR server's verifier opens the token (to the signed JWT inside; the
    signature check that follows needs the IdP's JWKS over HTTP, not what rotates here)."""
    return unseal(token, app.extensions["phr_verifier"].decryption_key).count(".") == 2


def _age(path: Path, seconds: float) -> None:
    """As if the last rotation of the file was `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_overlap_outlives_every_token_sealed_to_the_old_key() -> None:
    lifetime = CONFIGURATION_LIFETIME_S + ACCESS_TOKEN_TTL.total_seconds() + KNOWN_TTL_S
    assert lifetime <= sealing.RETIRE_AFTER_S


def test_fhir_token_key_rotation_with_live_tokens(
    federation: Federation, idp_app: Flask, fhir_app: Flask, cli: CliRunner
) -> None:
    settings = federation.settings
    fhir = settings.urls["fhir"]
    old = sealing.own_key(settings, "FHIR")
    before = _issue(idp_app, fhir)
    assert _kid(before) == old.kid and _opens(fhir_app, before)

    rotated = cli.invoke(main, ["fhir", "rotate-token-key"])
    assert rotated.exit_code == 0, rotated.output
    new = sealing.own_key(settings, "FHIR")
    assert new.kid != old.kid
    # Both keys are published, the new one first; a fresh chain shows it to every IdP.
    chain = federation.resolver().resolve(fhir)
    published = chain.metadata.resource.jwks["keys"]
    assert [k["kid"] for k in published] == [new.kid, old.kid]
    # The token issued before the rotation still opens at the running server ...
    assert _opens(fhir_app, before)
    # ... and once the IdP's view of the server renews, new tokens are sealed to the new key.
    idp_app.extensions["idp_federation_resolver"] = federation.resolver()
    recipients = idp_app.extensions["idp"].recipients
    recipients.clock = lambda: time.time() + KNOWN_TTL_S + 1
    after = _issue(idp_app, fhir)
    assert _kid(after) == new.kid and _opens(fhir_app, after)

    # Retiring before the overlap is over is refused, unless forced.
    refused = cli.invoke(main, ["fhir", "rotate-token-key", "--retire"])
    assert refused.exit_code == 1 and "wait, or use --force" in refused.output
    assert _opens(fhir_app, before)
    secret_file = settings.secrets_dir / "PHR_FHIR_TOKEN_DECRYPTION_KEY"
    _age(secret_file, sealing.RETIRE_AFTER_S + 1)
    retired = cli.invoke(main, ["fhir", "rotate-token-key", "--retire"])
    assert retired.exit_code == 0, retired.output
    assert [k.kid for k in sealing.own_keys(settings, "FHIR")] == [new.kid]
    with pytest.raises(InvalidToken, match="cannot be decrypted"):
        _opens(fhir_app, before)
    assert _opens(fhir_app, after)
    entity = statement.parse(publish.entity_configuration(settings, "fhir"), what="ec")
    assert [k["kid"] for k in entity.metadata["oauth_resource"]["jwks"]["keys"]] == [new.kid]


def test_consent_token_key_rotation(federation: Federation, cli: CliRunner) -> None:
    settings = federation.settings
    opening = sealing.OpeningKeys(settings, "CONSENT")  # as the consent API holds them
    sender = sealing.sender_secret(settings.secret("PHR_ACCESS_TOKEN_KEY"))
    old = sealing.public_jwk(sealing.own_key(settings, "CONSENT"))
    before = sealing.seal_to("a.b.c", old, sender)

    assert cli.invoke(main, ["consent", "rotate-token-key"]).exit_code == 0
    published = sealing.published_jwks(settings, "CONSENT")["keys"]
    assert published[1] == old and sealing.encryption_jwk({"keys": published}) == published[0]
    after = sealing.seal_to("d.e.f", published[0], sender)
    assert unseal(before, opening) == "a.b.c" and unseal(after, opening) == "d.e.f"

    retired = cli.invoke(main, ["consent", "rotate-token-key", "--retire", "--force"])
    assert retired.exit_code == 0 and "retired 1 older key" in retired.output
    with pytest.raises(InvalidToken):
        unseal(before, opening)
    assert unseal(after, opening) == "d.e.f"


def test_a_key_set_in_the_environment_is_not_rotated_by_the_command(
    federation: Federation, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHR_FHIR_TOKEN_DECRYPTION_KEY", "x" * 48)
    out = cli.invoke(main, ["fhir", "rotate-token-key"])
    assert out.exit_code == 1 and "set in the environment" in out.output
    assert sealing.own_keys(federation.settings, "FHIR")  # unchanged, still usable


def _restarted_idp(federation: Federation, made: list[Flask]) -> Flask:
    """The IdP started again on the same database, reading the rotated secrets."""
    app = create_idp(load_settings(dict(federation.settings.environ)))
    app.extensions["idp_federation_resolver"] = federation.resolver()
    made.append(app)
    return app


def _active(app: Flask, token: str) -> bool:
    seen = app.test_client().post("/introspect", data={"token": token}, headers=_basic())
    return bool(seen.get_json()["active"])


def test_shared_access_token_key_rotation(
    federation: Federation, idp_app: Flask, fhir_app: Flask, cli: CliRunner
) -> None:
    """PHR_ACCESS_TOKEN_KEY seals tokens for servers without a key of their own (here the
    consent API, which the federation does not list) and derives the IdP's sealing secret."""
    settings = federation.settings
    consent, fhir = settings.urls["consent"], settings.urls["fhir"]
    federation.fetcher.apps.pop(consent, None)
    opening = sealing.OpeningKeys(settings, "CONSENT")  # as the consent API holds them
    before = _issue(idp_app, consent)
    to_fhir = _issue(idp_app, fhir)  # sealed to the PHR server's key, CEK from the secret
    assert b64url_json(before.split(".")[0])["alg"] == "dir" and unseal(before, opening)

    assert cli.invoke(main, ["idp", "rotate-access-token-key"]).exit_code == 0
    assert unseal(before, opening)  # the running server opens the old token ...
    made: list[Flask] = []
    try:
        idp = _restarted_idp(federation, made)
        after = _issue(idp, consent)  # ... and the restarted IdP seals with the new key
        old_only = access_token_cipher(settings.secret("PHR_ACCESS_TOKEN_KEY").split()[1])
        with pytest.raises(InvalidToken):
            unseal(after, old_only)
        assert unseal(after, opening)
        assert _active(idp, before) and _active(idp, to_fhir) and _active(idp, after)

        retired = cli.invoke(main, ["idp", "rotate-access-token-key", "--retire", "--force"])
        assert retired.exit_code == 0, retired.output
        with pytest.raises(InvalidToken):
            unseal(before, opening)
        assert unseal(after, opening)
        idp = _restarted_idp(federation, made)
        assert not _active(idp, before) and not _active(idp, to_fhir) and _active(idp, after)
    finally:
        for app in made:
            app.extensions["phr_db"].dispose()
