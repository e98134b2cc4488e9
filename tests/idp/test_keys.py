"""Signing keys: published before they sign, kept until what they signed has expired, sealed
at rest; `phr idp rotate-keys` from the command line."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from idp import keys
from idp.models import SigningKey
from idp.tokens import now_utc
from launcher.cli import main
from phr_core.config import Settings


def _jwks_kids(app: Flask) -> set[str]:
    app.extensions["idp"].keys.refresh()
    return {k["kid"] for k in app.test_client().get("/jwks").get_json()["keys"]}


def _signing_kid(app: Flask) -> str:
    app.extensions["idp"].keys.refresh()
    return app.extensions["idp"].keys.signing_key("ES256").kid


def test_rotation_publishes_before_signing_and_keeps_old_keys(idp_app: Flask) -> None:
    db = idp_app.extensions["phr_db"]
    data_key = idp_app.extensions["idp"].settings.secret("PHR_IDP_DATA_KEY")
    with db.session() as s:
        waiting = s.scalars(
            select(SigningKey).where(SigningKey.alg == "ES256", SigningKey.state == "next")
        ).one()
    old = _signing_kid(idp_app)
    assert waiting.kid in _jwks_kids(idp_app) and waiting.kid != old  # published, not signing

    with db.session() as s, pytest.raises(keys.RotationTooSoon):
        keys.rotate(s, data_key)  # too soon: verifiers may not have fetched the waiting key
    later = now_utc() + timedelta(seconds=keys.JWKS_MAX_AGE_S + 1)
    with db.session() as s:
        promoted = keys.rotate(s, data_key, now=later)
    assert waiting.kid in promoted
    assert _signing_kid(idp_app) == waiting.kid
    kids = _jwks_kids(idp_app)
    assert old in kids  # still verifiable until what it signed has expired
    assert len([k for k in kids if k.startswith("es256")]) == 3  # retired, current, next

    much_later = later + keys.MAX_SIGNED_LIFETIME + timedelta(seconds=keys.JWKS_MAX_AGE_S + 1)
    with db.session() as s:
        keys.rotate(s, data_key, now=much_later)
    assert old not in _jwks_kids(idp_app)


def test_private_keys_are_sealed_at_rest(idp_app: Flask) -> None:
    with idp_app.extensions["phr_db"].session() as s:
        rows = s.scalars(select(SigningKey)).all()
    assert {r.alg for r in rows} == {"ES256", "RS256"}
    for r in rows:
        assert b"PRIVATE KEY" not in r.private_sealed
        assert "d" not in r.public_jwk  # the published half has no private parameters


def test_rotate_keys_command(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    first = runner.invoke(main, ["idp", "rotate-keys"])
    assert first.exit_code != 0 and "wait until" in first.output
    forced = runner.invoke(main, ["idp", "rotate-keys", "--force"])
    assert forced.exit_code == 0, forced.output
    listing = runner.invoke(main, ["idp", "keys"]).output
    assert listing.count("current") == 2 and listing.count("retired") == 2
