"""This IdP as relying party of the Digital Agency's authentication app (デジタル認証アプリ),
built on Authlib's OAuth 2.0 client (`authlib.oauth2.client.OAuth2Client`, `PrivateKeyJWT`,
`authlib.oidc.core.CodeIDToken`) with every request going through phr_core.outbound.

What we rely on, from the published reference (read through the `search` tool, Dec 2026):

* API reference (民間事業者向け / 行政機関向け),
  https://developers.digital.go.jp/documents/auth-and-sign/authserver and …/authserver-gov:
  authorization endpoint with `response_type=code` only; `scope` from `openid` (required),
  `name address birthdate gender` ("基本4情報取得を要求する場合設定") and `sign`; `client_id`,
  `redirect_uri`, `state` and `nonce` required (1–255 characters of %x20-7E);
  `code_challenge` required with `code_challenge_method` fixed to `S256`; `acr_values`
  optional, the reference's example being `acr_values=aal3 crl`.
* Implementation guideline, https://developers.digital.go.jp/documents/auth-and-sign/
  implement-guideline: authentication is the OpenID Connect authorization code flow
  (implicit and password flows are not offered).
* Client authentication `private_key_jwt`: iss = sub = client_id, aud = the token endpoint,
  jti, short exp, as in the published sample clients for the sandbox token endpoint
  `https://sb-auth-and-sign.go.jp/api/realms/main/protocol/openid-connect/token`
  (docs.p8n.app, "クライアントクレデンシャルフローによるトークンの取得"; the AWS blog
  "デジタル認証アプリサービス API を AWS と連携させてみよう" says private key JWT is required).
  That path suggests a Keycloak realm, whose discovery document lives at
  `{issuer}/.well-known/openid-configuration`; we read endpoints and `jwks_uri` from it.

NOT confirmed from the reference (the excerpts available did not show them):
* the meaning of each `acr` value and which one the ID token carries: we ask for
  PHR_CARD_APP_ACR_VALUES (default `aal3 crl`) and require the ID token's `acr` to be the
  first of them (`aal3`). If the real service answers differently, change the setting.
* the claim names of the 基本4情報 at userinfo: we read OpenID standard `name`, `birthdate`,
  `gender` and `address` (`formatted`, or a string).
* what happens to `sub` when a card or its 利用者証明用 certificate is renewed. We assume the
  worst case, that it changes, and handle it in idp/card/authapp/broker.py (see there).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import JWSRegistry

from idp.card.authapp.errors import AppError
from phr_core.outbound import Outbound, OutboundError
from phr_core.outbound import Response as OutboundResponse

ASSERTION_LIFETIME_S = 60  # "short exp" of the client assertion
ID_TOKEN_LEEWAY_S = 30
BASIC_FOUR = ("name", "address", "birthdate", "gender")


class _Answer:
    """An outbound response in the shape Authlib's token parsing reads (status_code, json)."""

    def __init__(self, resp: OutboundResponse) -> None:
        self._resp = resp
        self.status_code = resp.status

    def json(self) -> Any:
        return json.loads(self._resp.body)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise AppError("upstream_error")


class OutboundSession:
    """The `session` Authlib's OAuth2Client talks through: phr_core.outbound (bounded, SSRF
    policy, no redirects), applying the client authentication Authlib prepared."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    def post(
        self,
        url: str,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        **_: Any,
    ) -> _Answer:
        body = urlencode(dict(data or {}))
        hdrs = dict(headers or {})
        if auth is not None:
            url, hdrs, body = auth.prepare("POST", url, hdrs, body)
        try:
            resp = self.outbound.request("POST", url, body=body.encode("ascii"), headers=hdrs)
        except OutboundError:
            raise AppError("upstream_unreachable") from None
        return _Answer(resp)


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt, with a fresh short `exp` for every assertion (Authlib's
    default lifetime is an hour)."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + ASSERTION_LIFETIME_S}
        return super().sign(auth, token_endpoint)


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str
    algs: tuple[str, ...]


@dataclass(frozen=True)
class UpstreamResult:
    subject: str  # upstream `sub`; only ever stored keyed-hashed
    acr: str
    attributes: dict[str, str] | None  # the 基本4情報 when asked for, else None


def _get_json(outbound: Outbound, url: str) -> dict[str, Any]:
    try:
        resp = outbound.get(url, accept="application/json")
    except OutboundError:
        raise AppError("upstream_unreachable") from None
    if resp.status != 200:
        raise AppError("upstream_unreachable")
    return _json_object(resp.body)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    raise AppError("upstream_error")


class AuthAppClient:
    """One upstream service and this IdP's registration with it."""

    def __init__(
        self,
        outbound: Outbound,
        issuer: str,
        client_id: str,
        key: RSAKey,
        redirect_uri: str,
        acr_values: tuple[str, ...],
    ) -> None:
        self.outbound = outbound
        self.issuer = issuer
        self.client_id = client_id
        self.key = key
        self.redirect_uri = redirect_uri
        self.acr_values = acr_values
        self._discovery: Discovery | None = None
        self._jwks: KeySet | None = None

    def discovery(self) -> Discovery:
        if self._discovery is None:
            doc = _get_json(self.outbound, self.issuer + "/.well-known/openid-configuration")
            try:
                found = Discovery(
                    str(doc["issuer"]),
                    str(doc["authorization_endpoint"]),
                    str(doc["token_endpoint"]),
                    str(doc["jwks_uri"]),
                    str(doc["userinfo_endpoint"]),
                    tuple(doc.get("id_token_signing_alg_values_supported") or ("RS256",)),
                )
            except KeyError:
                raise AppError("upstream_error") from None
            if found.issuer.rstrip("/") != self.issuer:
                raise AppError("upstream_error")
            self._discovery = found
        return self._discovery

    def _oauth(self) -> OAuth2Client:
        client = OAuth2Client(
            OutboundSession(self.outbound),
            client_id=self.client_id,
            client_secret=self.key,  # Authlib's PrivateKeyJWT signs with the "secret"
            token_endpoint_auth_method="private_key_jwt",  # noqa: S106 - a method name
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
        )
        client.register_client_auth_method(
            ShortLivedPrivateKeyJWT(self.discovery().token_endpoint, alg="RS256")
        )
        return client

    def authorization_url(
        self, state: str, nonce: str, code_verifier: str, attributes: bool
    ) -> str:
        scope = " ".join(("openid", *BASIC_FOUR)) if attributes else "openid"
        url, _ = self._oauth().create_authorization_url(
            self.discovery().authorization_endpoint,
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
            scope=scope,
            acr_values=" ".join(self.acr_values),
        )
        return str(url)

    def finish(self, code: str, code_verifier: str, nonce: str, attributes: bool) -> UpstreamResult:
        """Token request (private_key_jwt, PKCE), full ID token validation, and the userinfo
        when the 基本4情報 were asked for. AppError says what failed."""
        disco = self.discovery()
        try:
            token = self._oauth().fetch_token(
                disco.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        except AppError:
            raise
        except Exception:
            raise AppError("token_refused") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AppError("id_token_invalid")
        claims = self.validate_id_token(id_token, nonce, str(token.get("access_token") or ""))
        attrs = self.userinfo(str(token["access_token"]), claims["sub"]) if attributes else None
        return UpstreamResult(str(claims["sub"]), str(claims.get("acr")), attrs)

    def _keys(self, refresh: bool) -> KeySet:
        if self._jwks is None or refresh:
            self._jwks = KeySet.import_key_set(
                _get_json(self.outbound, self.discovery().jwks_uri)  # type: ignore[arg-type]  # a JWKS document
            )
        return self._jwks

    def validate_id_token(self, id_token: str, nonce: str, access_token: str) -> CodeIDToken:
        """Signature by a key of the discovered JWKS (fetched again once for an unknown kid),
        then iss, aud, exp/iat, nonce, azp, at_hash (Authlib's CodeIDToken) and acr."""
        disco = self.discovery()
        registry = JWSRegistry(algorithms=list(disco.algs))
        decoded = None
        for refresh in (False, True):
            try:
                decoded = jwt.decode(id_token, self._keys(refresh), registry=registry)
                break
            except JoseError:
                continue
        if decoded is None:
            raise AppError("id_token_signature")
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": disco.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "acr": {"essential": True, "value": self.acr_values[0]},
            },
            {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=ID_TOKEN_LEEWAY_S)
        except JoseError as exc:
            raise AppError(_claim_failure(exc)) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AppError("id_token_invalid")
        return claims

    def userinfo(self, access_token: str, sub: str) -> dict[str, str]:
        try:
            resp = self.outbound.request(
                "GET",
                self.discovery().userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        except OutboundError:
            raise AppError("upstream_unreachable") from None
        if resp.status != 200:
            raise AppError("upstream_error")
        doc = _json_object(resp.body)
        if doc.get("sub") != sub:
            raise AppError("upstream_error")
        address = doc.get("address")
        if isinstance(address, dict):
            address = address.get("formatted")
        out = {
            "name": doc.get("name"),
            "birthdate": doc.get("birthdate"),
            "gender": doc.get("gender"),
            "address": address,
        }
        if not all(isinstance(v, str) and v for v in out.values()):
            raise AppError("attributes_missing")
        return {k: str(v) for k, v in out.items()}


def _claim_failure(exc: JoseError) -> str:
    claim = getattr(exc, "claim", "") or ""
    return {
        "aud": "id_token_audience",
        "nonce": "nonce_mismatch",
        "exp": "id_token_expired",
        "acr": "acr_insufficient",
    }.get(claim, "id_token_expired" if "expired" in str(exc).lower() else "id_token_invalid")
