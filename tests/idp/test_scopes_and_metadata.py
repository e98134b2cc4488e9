"""Issue 14, items 3 and 7 at the IdP: apps get `patient/` scopes only (the record the person
chooses bounds what they read); registration refuses unsafe metadata and names the value;
`profile` and its kin behave the same everywhere; discovery says what works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask

from idp.clients import load_clients_file
from idp.models import RefreshToken
from tests.idp.conftest import Browser, basic, code_request, exchange, pkce_pair
from tests.idp.test_registration import (
    PURPOSE,
    initial_token,  # noqa: F401 (fixture)
)

CHILD_AND_OWN = "openid patient/Patient.rs user/Immunization.rs"


def _register(app: Flask, token: str, body: dict):  # type: ignore[no-untyped-def]
    return app.test_client().post(
        "/register", json={"purpose": PURPOSE, **body}, headers={"Authorization": f"Bearer {token}"}
    )


# --- item 3: user/ scopes ---------------------------------------------------------------------


def test_registration_refuses_user_scopes(idp_app: Flask, initial_token: str) -> None:  # noqa: F811
    body = {"redirect_uris": ["https://rp.example.jp/cb"], "scope": CHILD_AND_OWN}
    resp = _register(idp_app, initial_token, body)
    assert resp.status_code == 400
    err = resp.get_json()
    assert err["error"] == "invalid_client_metadata"
    assert "'user/Immunization.rs'" in err["error_description"]
    assert "'patient/Immunization.rs'" in err["error_description"]  # what to ask instead


def test_authorization_refuses_user_scopes_for_apps(idp_app: Flask, register) -> None:
    """A statically registered app whose scope lists `user/…` (an operator's mistake, or from
    before) is refused at /authorize before any sign-in, with the scope named."""
    rp = register("old-app", scope=CHILD_AND_OWN)
    browser = Browser(idp_app.test_client())
    _, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope=CHILD_AND_OWN))
    assert back["error"] == ["invalid_scope"] and "code" not in back
    assert "'user/Immunization.rs'" in back["error_description"][0]
    assert browser.pages == []
    ok = browser.authorize(**code_request(rp, challenge, scope="openid patient/Patient.rs"))
    assert "code" in ok


def test_an_old_user_scope_refresh_token_is_not_renewed(idp_app: Flask, register) -> None:
    rp = register("renewing", scope="openid offline_access patient/Patient.rs")
    verifier, challenge = pkce_pair()
    back = Browser(idp_app.test_client()).authorize(
        **code_request(rp, challenge, scope="openid offline_access patient/Patient.rs")
    )
    tokens = exchange(idp_app, rp, back["code"][0], verifier).get_json()
    from idp.tokens import sha256_hex

    with idp_app.extensions["phr_db"].session() as s:  # as issued before the rule
        row = s.get(RefreshToken, sha256_hex(tokens["refresh_token"]))
        row.scope += " user/Immunization.rs"
    resp = idp_app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic("renewing", rp["client_secret"]),
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert "user/" in resp.get_json()["error_description"]


# --- item 7: registration metadata ------------------------------------------------------------

A = ["https://a.example/cb"]


@pytest.mark.parametrize(
    ("body", "error", "named"),
    [
        ({"redirect_uris": ["https://a b.example/cb"]}, "invalid_redirect_uri", "a b.example"),
        ({"redirect_uris": ["https://[::1/cb"]}, "invalid_redirect_uri", "[::1/cb"),
        ({"redirect_uris": ["https://a.example:99999/cb"]}, "invalid_redirect_uri", "99999"),
        ({"redirect_uris": ["https://me@a.example/cb"]}, "invalid_redirect_uri", "me@a.example"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", "javascript:"),
        ({"redirect_uris": ["https://a_b.example/cb"]}, "invalid_redirect_uri", "a_b.example"),
        ({"redirect_uris": [42]}, "invalid_redirect_uri", "42"),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": A, "post_logout_redirect_uris": ["javascript:x"]},
         "invalid_redirect_uri", "javascript:x"),
        ({"redirect_uris": A, "logo_uri": "javascript:alert(1)"},
         "invalid_client_metadata", "logo_uri must be an https URL"),
        ({"redirect_uris": A, "policy_uri": "javascript:alert(1)"},
         "invalid_client_metadata", "policy_uri"),
        ({"redirect_uris": A, "tos_uri": "JavaScript:alert(1)"},
         "invalid_client_metadata", "tos_uri"),
        ({"redirect_uris": A, "client_uri": "data:text/html,<script>"},
         "invalid_client_metadata", "client_uri"),
        ({"redirect_uris": A, "logo_uri#ja": "http://a.example/logo.png"},
         "invalid_client_metadata", "logo_uri#ja"),
        ({"redirect_uris": A, "client_name": "Safe\u202egpa.evil"},
         "invalid_client_metadata", "U+202E"),
        ({"redirect_uris": A, "client_name#en": "a\u2066b"},
         "invalid_client_metadata", "U+2066"),
        ({"redirect_uris": A, "client_name": "line\nbreak"},
         "invalid_client_metadata", "U+000A"),
        ({"redirect_uris": A, "client_name": ["not", "text"]},
         "invalid_client_metadata", "client_name must be a string"),
        ({"redirect_uris": A, "scope": "openid launch/everything"},
         "invalid_client_metadata", "'launch/everything'"),
        ({"redirect_uris": A, "scope": "openid system/*.write"},
         "invalid_client_metadata", "'system/*.write'"),
        ({"redirect_uris": A, "subject_type": "public"}, "invalid_client_metadata", "'public'"),
    ],
)  # fmt: skip
def test_registration_refuses_each_bad_value_and_names_it(
    idp_app: Flask,
    initial_token: str,  # noqa: F811
    body: dict,
    error: str,
    named: str,
) -> None:
    resp = _register(idp_app, initial_token, body)
    assert resp.status_code == 400, resp.get_json()
    err = resp.get_json()
    assert err["error"] == error
    assert named in err["error_description"], err["error_description"]
    # RFC 6749 5.2: printable ASCII without " and \
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in err["error_description"])


def test_an_attackers_long_value_is_not_echoed_whole(idp_app: Flask, initial_token: str) -> None:  # noqa: F811
    body = {"redirect_uris": A, "logo_uri": "javascript:" + "a" * 5000}
    resp = _register(idp_app, initial_token, body)
    description = resp.get_json()["error_description"]
    assert resp.status_code == 400 and "javascript:aaa" in description
    assert len(description) < 200 and "..." in description


def test_the_same_rules_hold_for_the_clients_file(idp_app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    for bad, named in (
        ({"logo_uri": "javascript:alert(1)"}, "logo_uri"),
        ({"client_name": "x\u202ey"}, "U+202E"),
        ({"scope": "openid nonsense"}, "'nonsense'"),
    ):
        meta = {"client_id": "file-app", "redirect_uris": A, **bad}
        path.write_text(json.dumps([meta]))
        with (
            idp_app.extensions["phr_db"].session() as s,
            pytest.raises(ValueError, match=re.escape(named)),
        ):
            load_clients_file(s, path)


# --- item 7: profile, one behaviour -----------------------------------------------------------


def test_profile_is_accepted_and_ignored_everywhere(
    idp_app: Flask,
    register,
    tmp_path: Path,
    initial_token: str,  # noqa: F811
) -> None:
    """`profile email` (many RPs' default) is accepted by the clients file, by registration and
    at /authorize, and never granted: no names or addresses here."""
    asked = "openid profile email"
    reg = _register(idp_app, initial_token, {"redirect_uris": A, "scope": asked})
    assert reg.status_code == 201, reg.get_json()
    path = tmp_path / "clients.json"
    path.write_text(json.dumps([{"client_id": "file-rp", "redirect_uris": A, "scope": asked}]))
    with idp_app.extensions["phr_db"].session() as s:
        assert load_clients_file(s, path) == 1
    rp = register("profile-rp", scope=asked)
    verifier, challenge = pkce_pair()
    back = Browser(idp_app.test_client()).authorize(**code_request(rp, challenge, scope=asked))
    tokens = exchange(idp_app, rp, back["code"][0], verifier).get_json()
    assert tokens["scope"] == "openid"


def test_an_unknown_scope_at_authorize_is_named(idp_app: Flask, register) -> None:
    rp = register("named")
    _, challenge = pkce_pair()
    back = Browser(idp_app.test_client()).authorize(
        **code_request(rp, challenge, scope="openid patient/Claim.rs")
    )
    assert back["error"] == ["invalid_scope"]
    assert "'patient/Claim.rs'" in back["error_description"][0]


# --- item 7: discovery ------------------------------------------------------------------------


def test_discovery_says_request_uri_is_par_only(idp_app: Flask, register) -> None:
    meta = idp_app.test_client().get("/.well-known/openid-configuration").get_json()
    assert meta["request_uri_parameter_supported"] is False
    assert meta["request_parameter_supported"] is False
    assert meta["pushed_authorization_request_endpoint"].endswith("/par")
    rp = register("par-rp")
    c = idp_app.test_client()
    _, challenge = pkce_pair()
    by_reference = c.get(
        "/authorize",
        query_string={"client_id": "par-rp", "request_uri": "https://rp.example.jp/req.jwt"},
    )
    assert by_reference.status_code == 400  # a request object by reference: not supported
    pushed = c.post(
        "/par", data=code_request(rp, challenge), headers=basic("par-rp", rp["client_secret"])
    )
    assert pushed.status_code == 201, pushed.get_json()
    urn = pushed.get_json()["request_uri"]
    assert urn.startswith("urn:ietf:params:oauth:request_uri:")
    follow = c.get("/authorize", query_string={"client_id": "par-rp", "request_uri": urn})
    assert follow.status_code == 302  # on to sign-in
