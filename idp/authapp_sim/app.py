"""A development stand-in of the Digital Agency's authentication app service
(デジタル認証アプリサービス), built from the same public API reference as the relying party
(idp/card/authapp/client.py cites it; what is unconfirmed there is invented the same way here).
`idp.authapp_sim.app:create_app()`; `phr dev run` serves it when PHR_CARD_VERIFIER=app and
PHR_CARD_APP_ISSUER is a loopback URL. Refused in production.

GET  /.well-known/openid-configuration   discovery
GET  /authorize        checks the request as the reference states it (code only, state, nonce,
                       PKCE S256 required, scope openid [+ name address birthdate gender]) and
                       plays "scan your card in the app": a virtual card file and its 4-digit
                       PIN stand in for the phone reading the card
POST /authorize        the scan (or "cancel" → error=access_denied) → redirect with code, state
POST /token            authorization_code only; private_key_jwt (iss = sub = client_id, aud =
                       this token endpoint, jti once, exp within 5 minutes) against the client's
                       public key (from PHR_CARD_APP_KEY_FILE: in development the IdP's own key
                       file, the stand-in for the key registered with the Digital Agency)
GET  /jwks             the ID token signing key
GET  /userinfo         sub, and the 基本4情報 when they were granted
GET  /healthz

Subjects: HMAC of the client id and the card's 利用者証明用 certificate, so a renewed card
(new certificate) gets a new `sub`: the case the broker must handle (see its docstring).

Tests can make it misbehave: `app.config["AUTHAPP_SIM_FAULT"]` = "wrong_audience", "expired",
"wrong_key", "wrong_nonce" or "low_acr" spoils the next ID tokens that way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from idp.card.errors import CardError
from idp.card.profile import SIGN
from idp.card.vcard import VirtualCard
from idp.card.verify import read_attributes
from phr_core.config import ConfigError, Settings, load_settings

bp = Blueprint("authapp_sim", __name__)

CODE_TTL_S = 60
ID_TOKEN_TTL_S = 300
MAX_ASSERTION_LIFETIME_S = 300
BASIC_FOUR = ("name", "address", "birthdate", "gender")
ACR = "aal3"


@dataclass
class SimState:
    issuer: str
    client_id: str
    redirect_uri: str
    client_key_file: Path
    signing_key: RSAKey
    stray_key: RSAKey  # "wrongly signed" tokens are signed with this one
    subject_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    jtis: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client_key(self) -> RSAKey:
        key = RSAKey.import_key(json.loads(self.client_key_file.read_text()))
        return RSAKey.import_key(key.as_dict(private=False))


def _sim() -> SimState:
    return current_app.extensions["authapp_sim"]


def _oauth_error(code: str, description: str, status: int = 400) -> ResponseReturnValue:
    return jsonify(error=code, error_description=description), status


@bp.get("/.well-known/openid-configuration")
def discovery() -> ResponseReturnValue:
    sim = _sim()
    return jsonify(
        issuer=sim.issuer,
        authorization_endpoint=sim.issuer + "/authorize",
        token_endpoint=sim.issuer + "/token",
        jwks_uri=sim.issuer + "/jwks",
        userinfo_endpoint=sim.issuer + "/userinfo",
        response_types_supported=["code"],
        grant_types_supported=["authorization_code"],
        scopes_supported=["openid", *BASIC_FOUR, "sign"],
        token_endpoint_auth_methods_supported=["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported=["RS256"],
        code_challenge_methods_supported=["S256"],
        id_token_signing_alg_values_supported=["RS256"],
        acr_values_supported=["aal3", "crl"],
        subject_types_supported=["pairwise"],
    )


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    return jsonify(keys=[_sim().signing_key.as_dict(private=False)])


def _check_authorize(args: dict[str, str]) -> str | None:
    sim = _sim()
    scope = args.get("scope", "").split()
    for name in ("state", "nonce"):
        value = args.get(name, "")
        if not 1 <= len(value) <= 255 or not all(0x20 <= ord(c) <= 0x7E for c in value):
            return f"{name} is required (1–255 visible ASCII characters)"
    if args.get("response_type") != "code":
        return "response_type must be code"
    if args.get("client_id") != sim.client_id:
        return "unknown client_id"
    if args.get("redirect_uri") != sim.redirect_uri:
        return "redirect_uri is not registered"
    if "openid" not in scope or not set(scope) <= {"openid", *BASIC_FOUR}:
        return "scope must be openid, optionally with name address birthdate gender"
    if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
        return "code_challenge with code_challenge_method=S256 is required"
    return None


PAGE = """<!doctype html><html lang="ja"><meta charset="utf-8">
<title>デジタル認証アプリ（開発用スタンドイン）</title>
<h1>デジタル認証アプリ（開発用）/ Digital Authentication App (development stand-in)</h1>
<p>スマートフォンでマイナンバーカードを読み取る代わりに、仮想カードのファイルと利用者証明用暗証番号（4桁）を入力します。
Instead of reading the card with the phone, give a virtual card file and its 4-digit PIN.</p>
<p>{scope_note}</p>
<form method="post" action="authorize">
{hidden}
<label>仮想カード / virtual card file <input name="card" size="60" required></label><br>
<label>暗証番号 / PIN
<input name="pin" type="password" inputmode="numeric" maxlength="4"></label><br>
<button name="decision" value="allow">読み取る / Scan</button>
<button name="decision" value="deny" formnovalidate>キャンセル / Cancel</button>
</form>{problem}</html>"""


def _page(args: dict[str, str], problem: str = "", status: int = 200) -> ResponseReturnValue:
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in args.items()
    )
    wants = set(args.get("scope", "").split()) & set(BASIC_FOUR)
    note = "基本4情報（氏名・住所・生年月日・性別）の提供に同意します。" if wants else ""
    problem_html = f'<p role="alert">{escape(problem)}</p>' if problem else ""
    body = PAGE.format(hidden=hidden, scope_note=note, problem=problem_html)
    return body, status, {"Content-Type": "text/html; charset=utf-8"}


def _redirect(redirect_uri: str, **params: str) -> ResponseReturnValue:
    return "", 302, {"Location": f"{redirect_uri}?{urlencode(params)}"}


@bp.get("/authorize")
def authorize() -> ResponseReturnValue:
    args = {k: v for k, v in request.args.items() if k in _KEPT}
    problem = _check_authorize(args)
    if problem:
        return _page({}, problem, 400)
    return _page(args)


_KEPT = (
    "response_type",
    "scope",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
)


@bp.post("/authorize")
def authorize_scan() -> ResponseReturnValue:
    sim = _sim()
    args = {k: v for k, v in request.form.items() if k in _KEPT}
    problem = _check_authorize(args)
    if problem:
        return _page({}, problem, 400)
    if request.form.get("decision") != "allow":
        return _redirect(sim.redirect_uri, error="access_denied", state=args["state"])
    try:
        card = VirtualCard.load(Path(request.form.get("card", "")))
        card.sign("auth", request.form.get("pin", ""), b"authapp-sim")
    except CardError as exc:
        return _page(args, exc.message("ja") + " / " + exc.message("en"), 400)
    except (OSError, ValueError, KeyError):
        return _page(args, "仮想カードを読み取れません / cannot read the virtual card", 400)
    fingerprint = hashlib.sha256(card.certificate_der("auth")).hexdigest()
    sub = hmac.new(
        sim.subject_secret, f"{sim.client_id}\n{fingerprint}".encode(), hashlib.sha256
    ).hexdigest()
    attrs = read_attributes(card.certificate(SIGN))
    code = secrets.token_urlsafe(32)
    with sim.lock:
        sim.codes[code] = {
            "sub": sub,
            "nonce": args["nonce"],
            "challenge": args["code_challenge"],
            "scope": args["scope"].split(),
            "attrs": attrs.as_dict() if attrs else None,
            "exp": time.time() + CODE_TTL_S,
            "auth_time": int(time.time()),
        }
    return _redirect(sim.redirect_uri, code=code, state=args["state"])


def _check_assertion(sim: SimState, assertion: str) -> str | None:
    try:
        token = jwt.decode(assertion, sim.client_key())
    except (JoseError, ValueError, OSError):
        return "client_assertion signature"
    c = token.claims
    now = time.time()
    if c.get("iss") != sim.client_id or c.get("sub") != sim.client_id:
        return "client_assertion iss and sub must be the client_id"
    aud = c.get("aud")
    if (aud if isinstance(aud, list) else [aud]) != [sim.issuer + "/token"]:
        return "client_assertion aud must be the token endpoint"
    exp = c.get("exp")
    if not isinstance(exp, int | float) or not now < exp <= now + MAX_ASSERTION_LIFETIME_S:
        return "client_assertion exp missing, past, or too far ahead"
    jti = c.get("jti")
    with sim.lock:
        for old, until in list(sim.jtis.items()):
            if until < now:
                del sim.jtis[old]
        if not isinstance(jti, str) or not jti or jti in sim.jtis:
            return "client_assertion jti missing or used before"
        sim.jtis[jti] = float(exp)
    return None


@bp.post("/token")
def token() -> ResponseReturnValue:
    sim = _sim()
    form = request.form
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type", "authorization_code only")
    if (
        form.get("client_assertion_type")
        != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ):
        return _oauth_error("invalid_client", "private_key_jwt is required", 401)
    problem = _check_assertion(sim, form.get("client_assertion", ""))
    if problem:
        return _oauth_error("invalid_client", problem, 401)
    with sim.lock:
        grant = sim.codes.pop(form.get("code", ""), None)
    if grant is None or grant["exp"] < time.time():
        return _oauth_error("invalid_grant", "unknown, used or expired code")
    if form.get("redirect_uri") not in (None, sim.redirect_uri):
        return _oauth_error("invalid_grant", "redirect_uri differs")
    verifier = form.get("code_verifier", "")
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
        return _oauth_error("invalid_grant", "PKCE verification failed")
    access = secrets.token_urlsafe(32)
    with sim.lock:
        sim.tokens[access] = {**grant, "exp": time.time() + ID_TOKEN_TTL_S}
    return jsonify(
        access_token=access,
        token_type="Bearer",  # noqa: S106 - the token type's name, not a secret
        expires_in=ID_TOKEN_TTL_S,
        id_token=_id_token(sim, grant, access),
        scope=" ".join(grant["scope"]),
    )


def _id_token(sim: SimState, grant: dict[str, Any], access: str) -> str:
    fault = current_app.config.get("AUTHAPP_SIM_FAULT")
    now = int(time.time())
    at_hash = hashlib.sha256(access.encode()).digest()[:16]
    claims = {
        "iss": sim.issuer,
        "sub": grant["sub"],
        "aud": "someone-else" if fault == "wrong_audience" else sim.client_id,
        "iat": now - (3600 if fault == "expired" else 0),
        "exp": now + (-1800 if fault == "expired" else ID_TOKEN_TTL_S),
        "auth_time": grant["auth_time"],
        "nonce": "not-yours" if fault == "wrong_nonce" else grant["nonce"],
        "acr": "aal1" if fault == "low_acr" else ACR,
        "amr": ["hwk", "pin"],
        "at_hash": base64.urlsafe_b64encode(at_hash).rstrip(b"=").decode(),
    }
    key = sim.stray_key if fault == "wrong_key" else sim.signing_key
    header = {"alg": "RS256", "kid": sim.signing_key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key)


@bp.get("/userinfo")
def userinfo() -> ResponseReturnValue:
    sim = _sim()
    auth = request.headers.get("Authorization", "")
    with sim.lock:
        grant = sim.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
    if grant is None or grant["exp"] < time.time():
        return _oauth_error("invalid_token", "unknown or expired access token", 401)
    out: dict[str, Any] = {"sub": grant["sub"]}
    attrs = grant["attrs"] or {}
    scope = set(grant["scope"])
    if "name" in scope:
        out["name"] = attrs.get("name")
    if "birthdate" in scope:
        out["birthdate"] = attrs.get("birthdate")
    if "gender" in scope:
        out["gender"] = attrs.get("sex")
    if "address" in scope:
        out["address"] = {"formatted": attrs.get("address")}
    return jsonify(out)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok", service="authapp_sim")


def create_app(settings: Settings | None = None) -> Flask:
    """The stand-in on PHR_CARD_APP_ISSUER; refused in production mode."""
    settings = settings or load_settings()
    if settings.production:
        raise ConfigError(
            "the authentication-app stand-in (idp.authapp_sim) is for development only"
        )
    issuer = settings.option("PHR_CARD_APP_ISSUER").strip().rstrip("/")
    if not issuer:
        raise ConfigError("the stand-in serves PHR_CARD_APP_ISSUER, which is empty")
    app = Flask("idp.authapp_sim")
    app.extensions["phr_settings"] = settings
    app.extensions["authapp_sim"] = SimState(
        issuer=issuer,
        client_id=settings.option("PHR_CARD_APP_CLIENT_ID").strip() or "RP00000001",
        redirect_uri=settings.issuer + "/login/app/callback",
        client_key_file=Path(settings.option("PHR_CARD_APP_KEY_FILE")),
        signing_key=RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, auto_kid=True),
        stray_key=RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, auto_kid=True),
    )
    app.register_blueprint(bp)
    return app
