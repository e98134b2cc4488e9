"""PHR_CARD_VERIFIER=app: the IdP as relying party of the authentication app, end to end against
the development stand-in (idp.authapp_sim) served on loopback, on both databases.

    our /authorize → /login → /login/app → stand-in /authorize (virtual card + PIN) →
    /login/app/callback → (first time: once more with the 基本4情報) → consent → the app's code
    → our /token → an ID token with our own pairwise sub
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import RSAKey
from sqlalchemy import func, select
from werkzeug.serving import make_server

from idp.app import create_app, prepare
from idp.authapp_sim.app import create_app as create_sim_app
from idp.card.authapp.broker import Broker
from idp.card.authapp.views import broker
from idp.card.models import CardAttributes, CardAudit, CardBinding
from idp.card.vcard import VirtualCard
from idp.card.verifier_config import app_choice
from idp.clients import upsert_static
from idp.models import Person
from phr_core import migrations, outbound
from phr_core.config import ConfigError, load_settings
from phr_core.services import SERVICES
from tests.idp.card.conftest import AUTH_PIN, BOB, AuthorityEnv, dead_url, start_authority
from tests.idp.conftest import REDIRECT, code_request, exchange, pkce_pair
from tests.phr_core.test_config import production_env

CLIENT_ID = "RP00000001"


@dataclass
class World:
    env: AuthorityEnv
    idp: Flask
    sim: Flask
    sim_url: str
    rp: dict

    def card(self, name: str = "card") -> VirtualCard:
        return self.env.card(name=name)

    def count(self, model: type) -> int:
        with self.idp.extensions["phr_db"].session() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> Iterator[World]:
    outbound.forget_unreachable()
    placeholder = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    sim_url = f"http://127.0.0.1:{placeholder.server_port}"
    app_env = {
        **environ,
        "PHR_CARD_VERIFIER": "app",
        "PHR_CARD_APP_ISSUER": sim_url,
        "PHR_CARD_APP_CLIENT_ID": CLIENT_ID,
        "PHR_IDP_GRANT_STORE": "local",
    }
    env = start_authority(app_env, tmp_path)
    settings = env.settings
    for svc in SERVICES:
        migrations.upgrade(svc, settings.database_urls[svc.name])
    prepare(settings)
    idp = create_app(settings)
    idp.config["TESTING"] = True
    sim = create_sim_app(settings)
    placeholder.app = sim
    threading.Thread(target=placeholder.serve_forever, daemon=True).start()
    rp = {
        "client_id": "rp-1",
        "client_name": "Test RP",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid",
    }
    secret = "rp-secret-" + "x" * 30
    with idp.extensions["phr_db"].session() as s:
        upsert_static(s, dict(rp), secret)
    yield World(env, idp, sim, sim_url, {**rp, "client_secret": secret})
    placeholder.shutdown()
    env.server.shutdown()
    idp.extensions["phr_db"].dispose()


@dataclass
class Run:
    params: dict[str, list[str]] | None  # the redirect back to the downstream app
    page: str = ""  # the error page, when it stopped at one
    status: int = 0
    scans: int = 0
    scopes: list[str] = field(default_factory=list)  # asked of the app, per visit


def sign_in(
    w: World, card: VirtualCard, challenge: str, pin: str = AUTH_PIN, decision: str = "allow"
) -> Run:
    """One person's browser through the whole flow; `scans` counts visits to the app."""
    idp_browser: FlaskClient = w.idp.test_client()
    sim_browser = w.sim.test_client()
    query = code_request(w.rp, challenge)
    resp = idp_browser.get("/authorize?" + urlencode(query))
    scans, scopes = 0, list[str]()
    for _ in range(16):
        if resp.status_code != 302:
            return Run(None, resp.get_data(as_text=True), resp.status_code, scans, scopes)
        location = resp.headers["Location"]
        parts = urlsplit(location)
        path = parts.path + ("?" + parts.query if parts.query else "")
        if location.startswith(w.sim_url):
            scans += 1
            page = sim_browser.get(path)
            assert page.status_code == 200, page.get_data(as_text=True)
            form = dict(parse_qs(parts.query, keep_blank_values=True))
            data = {k: v[0] for k, v in form.items()}
            scopes.append(data["scope"])
            data.update(card=str(card.path), pin=pin, decision=decision)
            answer = sim_browser.post("/authorize", data=data)
            assert answer.status_code == 302, answer.get_data(as_text=True)
            back = urlsplit(answer.headers["Location"])
            resp = idp_browser.get(back.path + "?" + back.query)
        elif location.startswith(REDIRECT):
            return Run(parse_qs(parts.query), "", 302, scans, scopes)
        elif parts.path == "/login":
            html = idp_browser.get(path).get_data(as_text=True)
            req = parse_qs(parts.query)["req"][0]
            assert f"/login/app?req={req}" in html
            resp = idp_browser.get(f"/login/app?req={req}")
        elif parts.path == "/consent":
            html = idp_browser.get(path).get_data(as_text=True)
            csrf = html.split('name="csrf" value="')[1].split('"')[0]
            req = parse_qs(parts.query)["req"][0]
            resp = idp_browser.post(
                "/consent", data={"csrf": csrf, "req": req, "decision": "allow"}
            )
        else:
            resp = idp_browser.get(path)
    raise AssertionError("too many redirects")


def signed_in_sub(w: World, card: VirtualCard) -> tuple[str, Run]:
    """Sign in, redeem the code at our token endpoint; our ID token's sub and the run."""
    verifier, challenge = pkce_pair()
    run = sign_in(w, card, challenge)
    assert run.params is not None, (run.status, run.page[:400])
    token = exchange(w.idp, w.rp, run.params["code"][0], verifier)
    assert token.status_code == 200, token.get_data(as_text=True)
    payload = token.get_json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["acr"] == "urn:phr:acr:card"
    return str(claims["sub"]), run


def upstream_subjects(w: World) -> set[str]:
    sim = w.sim.extensions["authapp_sim"]
    return {grant["sub"] for grant in sim.tokens.values()}


def audit(w: World) -> list[tuple[str, str, str | None]]:
    with w.idp.extensions["phr_db"].session() as s:
        rows = s.scalars(select(CardAudit).order_by(CardAudit.id))
        return [(r.event, r.outcome, r.code) for r in rows]


def test_first_sign_in_enrols_then_the_same_person_signs_in_with_one_scan(world: World) -> None:
    w = world
    card = w.card("alice")
    first, run1 = signed_in_sub(w, card)
    # openid only, then once more with the 基本4情報 to enrol
    assert run1.scopes == ["openid", "openid name address birthdate gender"]
    second, run2 = signed_in_sub(w, card)
    assert run2.scopes == ["openid"] and second == first
    subs = upstream_subjects(w)
    assert len(subs) == 1 and first not in subs  # downstream sees our pairwise sub only
    assert w.count(Person) == 1 and w.count(CardAttributes) == 1
    events = audit(w)
    assert ("app_enrollment", "success", None) in events
    assert events[-1] == ("app_sign_in", "success", None)


def test_the_upstream_subject_is_stored_only_keyed_hashed(world: World) -> None:
    w = world
    signed_in_sub(w, w.card("alice"))
    (sub,) = upstream_subjects(w)
    with w.idp.extensions["phr_db"].session() as s:
        bindings = list(s.scalars(select(CardBinding)))
        assert [b.cert_type for b in bindings] == ["app"]
        assert bindings[0].cert_key != sub
        assert bindings[0].cert_key == broker_for(w).subject_key(sub)
        dump = " ".join(
            str(getattr(row, col.name))
            for model in (CardBinding, CardAudit, CardAttributes)
            for row in s.scalars(select(model))
            for col in model.__table__.columns
        )
    assert sub not in dump
    key = hmac.new(b"wrong", sub.encode(), hashlib.sha256).hexdigest()
    assert key not in dump


def broker_for(w: World) -> Broker:
    with w.idp.test_request_context():
        return broker()


def test_a_renewed_card_reaches_the_same_person(world: World) -> None:
    w = world
    card = w.card("alice")
    before, _ = signed_in_sub(w, card)
    w.env.renew(card)  # new certificates: the stand-in gives a new upstream sub
    after, run = signed_in_sub(w, card)
    assert after == before and run.scans == 2
    assert len(upstream_subjects(w)) == 2
    assert w.count(Person) == 1
    with w.idp.extensions["phr_db"].session() as s:
        states = sorted(b.status for b in s.scalars(select(CardBinding)))
    assert states == ["active", "superseded"]
    assert ("app_renewal", "success", None) in audit(w)
    again, run = signed_in_sub(w, card)
    assert again == before and run.scans == 1


def test_someone_else_is_a_new_person(world: World) -> None:
    w = world
    alice, _ = signed_in_sub(w, w.card("alice"))
    bob, _ = signed_in_sub(w, w.env.card(BOB, name="bob"))
    assert alice != bob and w.count(Person) == 2


@pytest.mark.parametrize(
    ("fault", "code", "status", "words"),
    [
        (None, "access_denied", 403, "取り消されました"),
        ("wrong_audience", "id_token_audience", 502, "このサービス宛てではありません"),
        ("expired", "id_token_expired", 502, "有効期限が切れていました"),
        ("wrong_key", "id_token_signature", 502, "署名を確認できませんでした"),
        ("wrong_nonce", "nonce_mismatch", 400, "このサインインのものではありません"),
        ("low_acr", "acr_insufficient", 403, "水準が足りません"),
    ],
)
def test_upstream_failures_are_clear_pages_and_create_nothing(
    world: World, fault: str | None, code: str, status: int, words: str
) -> None:
    w = world
    w.sim.config["AUTHAPP_SIM_FAULT"] = fault
    _, challenge = pkce_pair()
    run = sign_in(w, w.card("alice"), challenge, decision="deny" if fault is None else "allow")
    assert run.params is None and run.status == status
    assert words in run.page
    assert w.count(Person) == 0 and w.count(CardBinding) == 0 and w.count(CardAttributes) == 0
    assert audit(w)[-1] == ("app_sign_in", "failure", code)


def test_the_token_endpoint_refuses_a_client_assertion_signed_with_another_key(
    world: World,
) -> None:
    w = world
    broker_for(w).client.key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    _, challenge = pkce_pair()
    run = sign_in(w, w.card("alice"), challenge)
    assert run.status == 502 and "受け付けませんでした" in run.page
    assert audit(w)[-1] == ("app_sign_in", "failure", "token_refused")
    assert w.count(Person) == 0


def test_english_page(world: World) -> None:
    w = world
    client = w.idp.test_client()
    resp = client.get("/login/app/callback?state=x&code=y", headers={"Accept-Language": "en"})
    assert resp.status_code == 400
    assert "not started in this browser" in resp.get_data(as_text=True)


def test_state_mismatch_is_refused_and_leaves_the_real_session_alone(world: World) -> None:
    w = world
    idp_browser = w.idp.test_client()
    _, challenge = pkce_pair()
    query = code_request(w.rp, challenge)
    req = parse_qs(
        urlsplit(idp_browser.get("/authorize?" + urlencode(query)).headers["Location"]).query
    )["req"][0]
    started = idp_browser.get(f"/login/app?req={req}")
    assert started.status_code == 302 and started.headers["Location"].startswith(w.sim_url)
    resp = idp_browser.get("/login/app/callback?state=forged&code=whatever")
    assert resp.status_code == 400
    assert "このブラウザーで始めたサインインではありません" in resp.get_data(as_text=True)
    assert audit(w)[-1] == ("app_sign_in", "failure", "state_mismatch")
    assert w.count(Person) == 0


def test_upstream_unreachable(environ: dict[str, str], tmp_path: Path) -> None:
    outbound.forget_unreachable()
    settings = load_settings(
        {
            **environ,
            "PHR_CARD_VERIFIER": "app",
            "PHR_CARD_APP_ISSUER": dead_url(),
            "PHR_CARD_APP_CLIENT_ID": CLIENT_ID,
        }
    )
    for svc in SERVICES:
        migrations.upgrade(svc, settings.database_urls[svc.name])
    prepare(settings)
    app = create_app(settings)
    try:
        rp = {"client_id": "rp-1", "redirect_uris": [REDIRECT], "scope": "openid"}
        with app.extensions["phr_db"].session() as s:
            upsert_static(s, dict(rp), "rp-secret-" + "x" * 30)
        client = app.test_client()
        _, challenge = pkce_pair()
        query = code_request({**rp, "client_id": "rp-1"}, challenge)
        login = client.get("/authorize?" + urlencode(query)).headers["Location"]
        req = parse_qs(urlsplit(login).query)["req"][0]
        resp = client.get(f"/login/app?req={req}")
        assert resp.status_code == 503
        assert "接続できません" in resp.get_data(as_text=True)
        with app.extensions["phr_db"].session() as s:
            codes = [r.code for r in s.scalars(select(CardAudit))]
            assert codes == ["upstream_unreachable"]
            assert s.scalar(select(func.count()).select_from(Person)) == 0
    finally:
        app.extensions["phr_db"].dispose()


def test_production_refuses_the_stand_in(tmp_path: Path) -> None:
    prod = load_settings(
        {
            **production_env(tmp_path),
            "PHR_CARD_VERIFIER": "app",
            "PHR_CARD_APP_ISSUER": "http://127.0.0.1:8020",
            "PHR_CARD_APP_CLIENT_ID": CLIENT_ID,
        }
    )
    with pytest.raises(ConfigError, match="development only"):
        create_sim_app(prod)
    with pytest.raises(ConfigError, match="https"):
        app_choice(prod)
    local = load_settings({**prod.environ, "PHR_CARD_APP_ISSUER": "https://localhost:8020"})
    with pytest.raises(ConfigError, match="stand-in"):
        app_choice(local)
    real = load_settings({**prod.environ, "PHR_CARD_APP_ISSUER": "https://auth-and-sign.go.jp"})
    with pytest.raises(ConfigError, match="PHR_CARD_APP_KEY_FILE"):
        app_choice(real)
