"""`phr idp rotate-keys` across live tokens (issue 20): an ID token signed before the rotation
still verifies against the published JWKS, new tokens are signed with the promoted key, and
once the old key is retired (its tokens expired) the old token no longer verifies."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp import keys
from idp.tokens import now_utc
from phr_core.tokens import b64url_json
from tests.idp.conftest import Browser
from tests.idp.test_pairwise_and_grants import _flow


def _verifies(app: Flask, token: str) -> bool:
    """Checks the token as a relying party does: against the IdP's published JWKS."""
    app.extensions["idp"].keys.refresh()
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    try:
        jwt.decode(token, jwks, algorithms=["ES256", "RS256"])
    except (JoseError, ValueError):
        return False
    return True


def _kid(token: str) -> str:
    return b64url_json(token.split(".")[0])["kid"]


def test_a_token_signed_before_a_rotation_verifies_until_its_key_is_retired(
    idp_app: Flask, register
) -> None:
    db = idp_app.extensions["phr_db"]
    data_key = idp_app.extensions["idp"].settings.secret("PHR_IDP_DATA_KEY")
    rp = register("app-a")
    person = Browser(idp_app.test_client(), person=1)
    before = _flow(idp_app, rp, person)["id_token"]
    assert _verifies(idp_app, before)

    later = now_utc() + timedelta(seconds=keys.JWKS_MAX_AGE_S + 1)
    with db.session() as s:
        promoted = keys.rotate(s, data_key, now=later)
    idp_app.extensions["idp"].keys.refresh()
    after = _flow(idp_app, rp, person)["id_token"]  # the same live session
    assert _kid(after) in promoted and _kid(after) != _kid(before)
    assert _verifies(idp_app, before) and _verifies(idp_app, after)

    much_later = later + keys.MAX_SIGNED_LIFETIME + timedelta(seconds=keys.JWKS_MAX_AGE_S + 1)
    with db.session() as s:
        keys.rotate(s, data_key, now=much_later)
    assert not _verifies(idp_app, before)
    assert _verifies(idp_app, after)
