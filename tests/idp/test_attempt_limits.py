"""Issue 14, item 6: attempt limits nobody can turn against someone else. Failures count per
source address, per claimed client *and* source before authentication, per client only after
it authenticated; `/introspect`, `/revoke` and `/par` share the limits. Client secrets are
stored with scrypt; weak static secrets are refused in production."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import limits
from idp.clients import load_clients_file
from idp.models import Attempt, Client
from phr_core.config import ConfigError
from tests.idp.conftest import Browser, basic, code_request, pkce_pair
from tests.idp.test_registration import initial_token  # noqa: F401 (fixture)

ATTACKER = "203.0.113.9"
ELSEWHERE = "198.51.100.7"


def from_(app: Flask, addr: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = addr
    return client


def _tokens(app: Flask, browser: Browser, rp: dict) -> dict:
    """An authorization code exchanged for tokens, the way the client does it."""
    verifier, challenge = pkce_pair()
    code = browser.authorize(**code_request(rp, challenge, scope="openid offline_access"))
    data = {
        "grant_type": "authorization_code",
        "code": code["code"][0],
        "redirect_uri": rp["redirect_uris"][0],
        "code_verifier": verifier,
    }
    if rp["client_secret"]:
        resp = app.test_client().post(
            "/token", data=data, headers=basic(rp["client_id"], rp["client_secret"])
        )
    else:
        resp = app.test_client().post("/token", data={**data, "client_id": rp["client_id"]})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_junk_claiming_a_public_client_does_not_lock_its_users_out(
    idp_app: Flask, register, browser: Browser
) -> None:
    """20 junk refreshes and code exchanges a minute, claiming a public app's client_id from one
    source, used to pause every user of that app. Now they pause that app at that source only:
    a person's legitimate refresh from elsewhere succeeds."""
    app = register("phone", secret=None)
    tokens = _tokens(idp_app, browser, app)
    attacker = from_(idp_app, ATTACKER)
    _, allowed, _ = limits.TOKEN_ENDPOINT
    for i in range(allowed):
        junk = (
            {"grant_type": "refresh_token", "refresh_token": f"junk-{i}"}
            if i % 2
            else {"grant_type": "authorization_code", "code": f"junk-{i}",
                  "redirect_uri": app["redirect_uris"][0], "code_verifier": "x" * 43}
        )  # fmt: skip
        resp = attacker.post("/token", data={**junk, "client_id": "phone"})
        assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    refresh = {"grant_type": "refresh_token", "client_id": "phone"}
    paused = attacker.post("/token", data={**refresh, "refresh_token": tokens["refresh_token"]})
    assert paused.status_code == 429 and int(paused.headers["Retry-After"]) > 0
    ok = from_(idp_app, ELSEWHERE).post(
        "/token", data={**refresh, "refresh_token": tokens["refresh_token"]}
    )
    assert ok.status_code == 200, ok.get_json()
    assert "access_token" in ok.get_json()


def test_wrong_secrets_pause_the_guessing_source_not_the_client(idp_app: Flask, register) -> None:
    cc = {"grant_types": ["client_credentials"], "redirect_uris": [], "scope": "system/*.write"}
    victim = register("victim", **cc)
    data = {"grant_type": "client_credentials"}
    attacker = from_(idp_app, ATTACKER)
    for _ in range(limits.TOKEN_ENDPOINT[1]):
        assert (
            attacker.post("/token", data=data, headers=basic("victim", "guess")).status_code == 401
        )
    good = basic("victim", victim["client_secret"])
    assert attacker.post("/token", data=data, headers=good).status_code == 429
    assert from_(idp_app, ELSEWHERE).post("/token", data=data, headers=good).status_code == 200


def test_an_authenticated_clients_own_failures_count_for_it_everywhere(
    idp_app: Flask, register
) -> None:
    """After authentication, failures are the client's own (only a holder of its secret can
    cause them): they pause that client from every source, and no other client."""
    rp = register("careless")
    other = register("careful")
    bad = {"grant_type": "authorization_code", "code": "nope", "code_verifier": "x" * 43,
           "redirect_uri": rp["redirect_uris"][0]}  # fmt: skip
    sources = [from_(idp_app, f"192.0.2.{i}") for i in range(1, 5)]
    for i in range(limits.TOKEN_ENDPOINT[1]):
        resp = sources[i % 4].post(
            "/token", data=bad, headers=basic("careless", rp["client_secret"])
        )
        assert resp.status_code == 400
    again = from_(idp_app, ELSEWHERE).post(
        "/token", data=bad, headers=basic("careless", rp["client_secret"])
    )
    assert again.status_code == 429
    fine = from_(idp_app, ELSEWHERE).post(
        "/token", data=bad, headers=basic("careful", other["client_secret"])
    )
    assert fine.status_code == 400 and fine.get_json()["error"] == "invalid_grant"


def test_introspect_revoke_and_par_share_the_limits(idp_app: Flask, register) -> None:
    """Unlimited before: now a guessing source is paused at every client endpoint."""
    rp = register("rp-limits")
    attacker = from_(idp_app, ATTACKER)
    for i in range(limits.TOKEN_ENDPOINT[1]):
        path = ("/introspect", "/revoke", "/par")[i % 3]
        resp = attacker.post(path, data={"token": "x"}, headers=basic("rp-limits", f"guess-{i}"))
        assert resp.status_code == 401, (path, resp.get_json())
    good = basic("rp-limits", rp["client_secret"])
    for path in ("/introspect", "/revoke", "/par", "/token"):
        resp = attacker.post(path, data={"token": "x"}, headers=good)
        assert resp.status_code == 429, path
        assert resp.get_json()["error"] == "invalid_request" and resp.headers["Retry-After"]
    ok = from_(idp_app, ELSEWHERE).post("/introspect", data={"token": "x"}, headers=good)
    assert ok.status_code == 200 and ok.get_json() == {"active": False}


def test_a_source_guessing_across_clients_is_paused(idp_app: Flask, register) -> None:
    register("known")
    attacker = from_(idp_app, ATTACKER)
    _, allowed, _ = limits.SOURCE
    for i in range(allowed):
        resp = attacker.post("/token", data={"grant_type": "client_credentials"},
                             headers=basic(f"client-{i}", "guess"))  # fmt: skip
        assert resp.status_code == 401
    blocked = attacker.post("/revoke", data={"token": "x", "client_id": "known"})
    assert blocked.status_code == 429
    with idp_app.extensions["phr_db"].session() as s:
        row = s.get(Attempt, f"source:{ATTACKER}")
        assert row is not None and row.failures == allowed


def test_trusted_proxy_forwarded_address_is_the_source(migrated, tmp_path: Path) -> None:
    """Behind a configured reverse proxy, the source is the nearest untrusted X-Forwarded-For
    hop (what a client prepends is ignored); from anyone else the header means nothing."""
    from idp.app import create_app, prepare
    from phr_core.config import load_settings

    settings = load_settings({**migrated.environ, "PHR_IDP_GRANT_STORE": "local",
                              "PHR_IDP_TRUSTED_PROXIES": "10.0.0.0/8"})  # fmt: skip
    prepare(settings)
    app = create_app(settings)
    try:
        proxy = from_(app, "10.1.2.3")
        for _ in range(limits.TOKEN_ENDPOINT[1]):
            proxy.post("/token", data={"client_id": "x", "grant_type": "client_credentials"},
                       headers={"X-Forwarded-For": f"6.6.6.6, {ATTACKER}"})  # fmt: skip
        direct = from_(app, "192.0.2.50")
        direct.post("/token", data={"client_id": "x"}, headers={"X-Forwarded-For": "7.7.7.7"})
        with app.extensions["phr_db"].session() as s:
            assert s.get(Attempt, f"token:x@{ATTACKER}").failures == limits.TOKEN_ENDPOINT[1]
            assert s.get(Attempt, "source:6.6.6.6") is None
            assert s.get(Attempt, "source:192.0.2.50").failures == 1
            assert s.get(Attempt, "source:7.7.7.7") is None
    finally:
        app.extensions["phr_db"].dispose()


# --- stored secrets ---------------------------------------------------------------------------


def test_secrets_are_stored_with_scrypt_and_old_hashes_upgrade(idp_app: Flask, register) -> None:
    cc = {"grant_types": ["client_credentials"], "redirect_uris": [], "scope": "system/*.write"}
    rp = register("old-client", **cc)
    secret = rp["client_secret"]
    db = idp_app.extensions["phr_db"]
    with db.session() as s:
        row = s.get(Client, "old-client")
        assert row.secret_hash.startswith("scrypt$14$8$1$")
        assert hashlib.sha256(secret.encode()).hexdigest() not in row.secret_hash
        row.secret_hash = hashlib.sha256(secret.encode()).hexdigest()  # as stored before
    c = idp_app.test_client()
    data = {"grant_type": "client_credentials"}
    assert c.post("/token", data=data, headers=basic("old-client", secret + "x")).status_code == 401
    with db.session() as s:
        assert not s.get(Client, "old-client").secret_hash.startswith("scrypt$")  # not on failure
    assert c.post("/token", data=data, headers=basic("old-client", secret)).status_code == 200
    with db.session() as s:
        assert s.get(Client, "old-client").secret_hash.startswith("scrypt$")
    assert c.post("/token", data=data, headers=basic("old-client", secret)).status_code == 200


def test_dynamic_registration_stores_scrypt(idp_app: Flask, initial_token: str) -> None:  # noqa: F811
    c = idp_app.test_client()
    body = {"redirect_uris": ["https://rp.example.jp/cb"], "purpose": "記録を見るため"}
    reg = c.post("/register", json=body, headers={"Authorization": f"Bearer {initial_token}"})
    assert reg.status_code == 201, reg.get_json()
    with idp_app.extensions["phr_db"].session() as s:
        stored = s.get(Client, reg.get_json()["client_id"]).secret_hash
    assert stored.startswith("scrypt$") and reg.get_json()["client_secret"] not in stored


@pytest.mark.parametrize(
    ("secret", "weak"),
    [("s" * 40, True), ("correct horse battery staple", True), ("0123456789abcdef" * 2, True),
     ("3f9c1b2a7d4e6f80a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718", False),
     ("q8Zr2-Kd_0xWm3LpT7vY9bNc4HsJf6Ag1RuE5iOeQkM", False)],
)  # fmt: skip
def test_production_refuses_weak_static_secrets(
    idp_app: Flask, tmp_path: Path, secret: str, weak: bool
) -> None:
    path = tmp_path / "clients.json"
    meta = {"client_id": "svc", "client_secret": secret, "grant_types": ["client_credentials"],
            "redirect_uris": [], "scope": "system/*.write"}  # fmt: skip
    path.write_text(json.dumps([meta]))
    with idp_app.extensions["phr_db"].session() as s:
        if weak:
            with pytest.raises(ConfigError, match=r"client 'svc'.*too weak.*32 random bytes"):
                load_clients_file(s, path, production=True)
        else:
            assert load_clients_file(s, path, production=True) == 1
        assert load_clients_file(s, path, production=False) == 1  # development: any secret


def test_migration_keeps_existing_secrets_working(settings) -> None:  # type: ignore[no-untyped-def]
    """A database from before idp_0010 (SHA-256 digests in a 64-character column) upgrades in
    place; its clients authenticate with the secrets they have, and get scrypt hashes then."""
    from idp.app import create_app, prepare
    from phr_core import migrations
    from phr_core.config import load_settings
    from phr_core.db import Database
    from phr_core.services import SERVICES, get_service

    for spec in SERVICES:
        if spec.name != "idp":
            migrations.upgrade(spec, settings.database_urls[spec.name])
    url = settings.database_urls["idp"]
    migrations.upgrade(get_service("idp"), url, "idp_0009")
    secret = "an-old-secret-" + "z" * 30
    db = Database(url)
    with db.session() as s:
        s.add(Client(
            client_id="legacy", client_name="legacy", registration="static", sector="legacy",
            client_metadata={"grant_types": ["client_credentials"], "redirect_uris": [],
                             "scope": "system/*.write"},
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        ))  # fmt: skip
    db.dispose()
    migrations.upgrade(get_service("idp"), url)
    env = load_settings({**settings.environ, "PHR_IDP_GRANT_STORE": "local"})
    prepare(env)
    app = create_app(env)
    try:
        c = app.test_client()
        data = {"grant_type": "client_credentials"}
        assert c.post("/token", data=data, headers=basic("legacy", secret)).status_code == 200
        with app.extensions["phr_db"].session() as s:
            assert s.get(Client, "legacy").secret_hash.startswith("scrypt$")
    finally:
        app.extensions["phr_db"].dispose()
