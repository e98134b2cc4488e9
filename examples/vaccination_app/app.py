"""Example SMART on FHIR app: a child's next vaccinations and growth, read from a PHR server.

A standalone launch (SMART App Launch 2.x) as a public client: discovery from the FHIR server's
`/.well-known/smart-configuration`, authorization code with PKCE S256, the `patient` the person
picked on the consent screen, refresh when the access token runs out, and a clear page when the
person withdraws the app's access. Tokens stay on the server side (in memory here; use your own
store); the browser only holds a signed session cookie with a random key.

With APP_TRUST_ANCHOR set it reads the child's record across the federation: every city's PHR
server the trust anchor vouches for, a token for each, both cities' vaccinations of a child
that moved, each with its city (across_cities.py).

Standalone on purpose: it uses Flask and requests only and nothing of the platform's code, so
you can copy this folder. Run: `python app.py` (settings below, from the environment).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

import requests
from across_cities import everything_across, phr_servers
from flask import Flask, abort, redirect, render_template, request, session, url_for
from jp_schedule import next_doses

log = logging.getLogger("vaccination_app")

LOINC = "http://loinc.org"
BODY_MEASUREMENT = (  # JP Core's observation category of height, weight, head circumference, …
    "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS|body-measurement"
)
# Latest of each, for the growth summary (JP Core body measurements carry these LOINC codes).
GROWTH = (
    ("29463-7", "体重", "Weight"),
    ("8302-2", "身長", "Height"),
    ("9843-4", "頭囲", "Head circumference"),
)
VACCINE_SYSTEM_SUFFIX = ":vaccine"  # the city register's vaccine codes (see the README)
TIMEOUT = 10
REFRESH_MARGIN_S = 30


@dataclass
class Config:
    fhir_url: str = os.environ.get("APP_FHIR_URL", "http://127.0.0.1:8002")
    client_id: str = os.environ.get("APP_CLIENT_ID", "demo-vaccination-app")
    redirect_uri: str = os.environ.get("APP_REDIRECT_URI", "http://127.0.0.1:8010/callback")
    home_url: str = os.environ.get("APP_HOME_URL", "http://127.0.0.1:8010/")
    # The minimum: the child's Patient (birth date, for the schedule), immunizations and body
    # measurements only (a granular SMART v2 scope: not the checkups' other findings);
    # `openid` for sign-out, `offline_access` for a refresh token.
    scope: str = os.environ.get(
        "APP_SCOPE",
        "openid offline_access launch/patient patient/Patient.rs patient/Immunization.rs "
        f"patient/Observation.rs?category={BODY_MEASUREMENT}",
    )
    secret_key: str = os.environ.get("APP_SECRET_KEY", "") or secrets.token_hex(32)
    # The federation's trust anchor: read every city's PHR server (a family that moved).
    trust_anchor: str = os.environ.get("APP_TRUST_ANCHOR", "")

    def scopes(self) -> str:
        """The scopes asked, the same across the federation: on every city's PHR server the
        `patient/` scopes open the child the parent chose (that child's record in each city).
        Apps get no `user/` scopes (they would reach past the parent's choice)."""
        return self.scope


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: float
    patient: str
    id_token: str | None = None
    # Access tokens for the other cities' PHR servers: FHIR base URL → (token, expiry).
    others: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Refresh tokens rotate and a replayed one revokes the whole family: two requests of one
    # person must never refresh at the same time with the same token.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class PlatformError(Exception):
    """The token endpoint refused for another reason (e.g. 429 too many attempts, 503): the
    person is asked to try later; the error code is logged, never a token."""


class AccessWithdrawn(Exception):
    """The person withdrew the app's access (or it ended): 401/403 from the FHIR server after a
    refresh, or the refresh token refused with invalid_grant."""


@dataclass
class TokenStore:
    """Server-side token store keyed by a random id kept in the session cookie."""

    items: dict[str, Tokens] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, tokens: Tokens) -> str:
        key = secrets.token_urlsafe(24)
        with self.lock:
            self.items[key] = tokens
        return key

    def get(self, key: str | None) -> Tokens | None:
        with self.lock:
            return self.items.get(key or "")

    def drop(self, key: str | None) -> Tokens | None:
        with self.lock:
            return self.items.pop(key or "", None)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Smart:
    """Discovery and the OAuth calls, against the FHIR server's SMART configuration."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._meta: dict[str, Any] | None = None

    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            url = self.cfg.fhir_url.rstrip("/") + "/.well-known/smart-configuration"
            meta = requests.get(url, timeout=TIMEOUT).json()
            # RP-initiated logout lives in the OpenID provider's own metadata.
            oidc = requests.get(
                meta["issuer"].rstrip("/") + "/.well-known/openid-configuration", timeout=TIMEOUT
            ).json()
            meta.setdefault("end_session_endpoint", oidc.get("end_session_endpoint"))
            meta.setdefault("revocation_endpoint", oidc.get("revocation_endpoint"))
            self._meta = meta
        return self._meta

    def token(self, data: dict[str, str]) -> dict[str, Any]:
        resp = requests.post(
            self.meta()["token_endpoint"],
            data={**data, "client_id": self.cfg.client_id},
            timeout=TIMEOUT,
        )
        body = resp.json()
        if resp.status_code != 200:
            if body.get("error") == "invalid_grant":
                raise AccessWithdrawn(body.get("error_description", "invalid_grant"))
            raise PlatformError(f"token endpoint: {resp.status_code} {body.get('error')}")
        return body

    def refresh(self, tokens: Tokens, stale: str) -> None:
        """A new access token in place of `stale`, unless another request already got one."""
        with tokens.lock:
            if tokens.access_token != stale:
                return
            if not tokens.refresh_token:
                raise AccessWithdrawn("the access token expired and there is no refresh token")
            body = self.token(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
            )
            tokens.refresh_token = body.get("refresh_token", tokens.refresh_token)  # rotated
            tokens.expires_at = time.time() + int(body.get("expires_in", 300))
            tokens.access_token = body["access_token"]

    def token_for(self, tokens: Tokens, resource: str) -> str:
        """An access token for another PHR server (RFC 8707 `resource`), from the refresh
        token, which rotates as usual."""
        with tokens.lock:
            kept = tokens.others.get(resource)
            if kept and kept[1] - REFRESH_MARGIN_S > time.time():
                return kept[0]
            if not tokens.refresh_token:
                raise AccessWithdrawn("no refresh token to ask for another server's token")
            body = self.token(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
                 "resource": resource}
            )  # fmt: skip
            tokens.refresh_token = body.get("refresh_token", tokens.refresh_token)
            expires = time.time() + int(body.get("expires_in", 300))
            tokens.others[resource] = (body["access_token"], expires)
            return body["access_token"]

    def revoke(self, tokens: Tokens) -> None:
        endpoint = self.meta().get("revocation_endpoint")
        if endpoint and tokens.refresh_token:
            try:
                requests.post(
                    endpoint,
                    data={"token": tokens.refresh_token, "token_type_hint": "refresh_token",
                          "client_id": self.cfg.client_id},
                    timeout=TIMEOUT,
                )  # fmt: skip
            except requests.RequestException:
                log.warning("token revocation failed; signing out anyway")


class Fhir:
    """FHIR reads with the person's token: refresh once when it expired or is refused with
    401, and report a refusal after that (or a 403) as withdrawn access."""

    def __init__(self, smart: Smart, tokens: Tokens) -> None:
        self.smart = smart
        self.tokens = tokens
        self.base = smart.cfg.fhir_url.rstrip("/")

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if time.time() > self.tokens.expires_at - REFRESH_MARGIN_S:
            self.smart.refresh(self.tokens, self.tokens.access_token)
        url = path if path.startswith("http") else f"{self.base}/{path}"
        used = self.tokens.access_token
        resp = self._send(url, params, used)
        if resp.status_code == 401:
            self.smart.refresh(self.tokens, used)
            resp = self._send(url, params, self.tokens.access_token)
        if resp.status_code in (401, 403):
            raise AccessWithdrawn(_diagnostics(resp))
        resp.raise_for_status()
        return resp.json()

    def _send(self, url: str, params: dict[str, str] | None, token: str) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/fhir+json",
        }
        return requests.get(url, params=params, headers=headers, timeout=TIMEOUT)

    def search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every match, following the Bundle's `next` links."""
        found: list[dict[str, Any]] = []
        bundle = self.get(rtype, params)
        while True:
            found += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
            nxt = [link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"]
            if not nxt:
                return found
            bundle = self.get(nxt[0])


def read_across(smart: Smart, tokens: Tokens, fhir: Fhir) -> Callable[[str, str], dict[str, Any]]:
    """`get(server, path)` for across_cities.everything_across: the app's own server through
    `fhir` (refresh and withdrawal handled there), another with a token for that server."""

    def get(server: str, path: str) -> dict[str, Any]:
        if server.rstrip("/") == fhir.base:
            return fhir.get(path)
        token = smart.token_for(tokens, server)
        resp = requests.get(
            f"{server.rstrip('/')}/{path}",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            timeout=TIMEOUT,
        )
        resp.raise_for_status()
        return resp.json()

    return get


def _diagnostics(resp: requests.Response) -> str:
    try:
        issues = resp.json().get("issue", [])
        return "; ".join(i.get("diagnostics", "") for i in issues) or str(resp.status_code)
    except ValueError:
        return str(resp.status_code)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def child_view(
    fhir: Fhir,
    patient: str,
    today: date,
    across: list[tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """What the home page shows: the schedule's next doses and the latest measurements.
    `across`: (city, resource) of the child from every city's server (federation mode); the
    vaccinations then come from all of them, each listed with its city."""
    child = fhir.get(f"Patient/{patient}")
    birth = _day(child.get("birthDate"))
    given: dict[str, list[date]] = {}
    if across is None:
        immunizations = [
            ("", i) for i in fhir.search("Immunization", {"patient": patient, "_count": "100"})
        ]
    else:
        immunizations = [(c, r) for c, r in across if r.get("resourceType") == "Immunization"]
    history = []
    for city, imm in immunizations:
        if imm.get("status") != "completed":
            continue
        when = _day(imm.get("occurrenceDateTime"))
        for c in imm.get("vaccineCode", {}).get("coding", []):
            if str(c.get("system", "")).endswith(VACCINE_SYSTEM_SUFFIX) and when:
                given.setdefault(c["code"], []).append(when)
                history.append({"date": when, "vaccine": c.get("display") or c["code"],
                                "city": city})  # fmt: skip
    history.sort(key=lambda h: h["date"], reverse=True)
    codes = ",".join(f"{LOINC}|{code}" for code, _, _ in GROWTH)
    latest: dict[str, dict[str, Any]] = {}
    for obs in fhir.search(
        "Observation", {"patient": patient, "code": codes, "_sort": "-date", "_count": "100"}
    ):
        for c in obs.get("code", {}).get("coding", []):
            if c.get("system") == LOINC and c.get("code") not in latest:
                latest[c["code"]] = obs
    growth = []
    for code, ja, en in GROWTH:
        obs = latest.get(code)
        if obs:
            q = obs.get("valueQuantity", {})
            growth.append({"ja": ja, "en": en, "value": q.get("value"), "unit": q.get("unit"),
                           "date": _day(obs.get("effectiveDateTime"))})  # fmt: skip
    return {
        "birth": birth,
        "doses": next_doses(birth, given, today) if birth else [],
        "given": sum(len(v) for v in given.values()),
        "growth": growth,
        "history": history if across is not None else None,
    }


def create_app(cfg: Config | None = None) -> Flask:
    cfg = cfg or Config()
    app = Flask(__name__)
    app.secret_key = cfg.secret_key
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    smart = Smart(cfg)
    store = TokenStore()
    app.extensions["vaccination_app"] = (smart, store)

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(24)
        return session["csrf"]

    app.jinja_env.globals["csrf_token"] = csrf_token

    def withdrawn() -> Any:
        tokens = store.drop(session.pop("tokens", None))
        del tokens  # nothing to revoke: the platform already ended the grant
        return render_template("withdrawn.html"), 403

    @app.get("/")
    def home() -> Any:
        tokens = store.get(session.get("tokens"))
        if tokens is None:
            return render_template("start.html")
        fhir = Fhir(smart, tokens)
        try:
            across, failed = None, []
            if cfg.trust_anchor:
                across, failed = everything_across(
                    read_across(smart, tokens, fhir),
                    fhir.base,
                    tokens.patient,
                    phr_servers(cfg.trust_anchor),
                )
            view = child_view(fhir, tokens.patient, date.today(), across)
            view["unreachable"] = failed
        except AccessWithdrawn as exc:
            log.info("access withdrawn: %s", exc)
            return withdrawn()
        return render_template("child.html", **view, today=date.today())

    @app.post("/login")
    def login() -> Any:
        if request.form.get("csrf") != session.get("csrf"):
            abort(400)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(24)
        session["auth"] = {"state": state, "verifier": verifier}
        query = {
            "response_type": "code",
            "client_id": cfg.client_id,
            "redirect_uri": cfg.redirect_uri,
            "scope": cfg.scopes(),
            "state": state,
            "aud": cfg.fhir_url,  # SMART: the FHIR server the token is for
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "ui_locales": "ja",
        }
        if request.form.get("switch"):
            # The IdP reuses an active grant without asking; to open another record (another
            # child), ask for the consent screen again, where the person picks it.
            query["prompt"] = "consent"
        return redirect(smart.meta()["authorization_endpoint"] + "?" + urlencode(query))

    @app.get("/callback")
    def callback() -> Any:
        pending = session.pop("auth", None)
        if not pending or request.args.get("state") != pending["state"]:
            return render_template("error.html", reason="state"), 400
        if "error" in request.args:
            # e.g. access_denied when the person declined on the consent screen
            return render_template("error.html", reason=request.args["error"]), 400
        try:
            body = smart.token({
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "redirect_uri": cfg.redirect_uri,
                "code_verifier": pending["verifier"],
            })  # fmt: skip
        except AccessWithdrawn:
            return render_template("error.html", reason="invalid_grant"), 400
        if not body.get("patient"):
            return render_template("error.html", reason="no_patient"), 400
        tokens = Tokens(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=time.time() + int(body.get("expires_in", 300)),
            patient=body["patient"],
            id_token=body.get("id_token"),
        )
        session["tokens"] = store.put(tokens)
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout() -> Any:
        if request.form.get("csrf") != session.get("csrf"):
            abort(400)
        tokens = store.drop(session.pop("tokens", None))
        session.clear()
        end = smart.meta().get("end_session_endpoint")
        if tokens is None or not end:
            return redirect(url_for("home"))
        smart.revoke(tokens)
        query = {"client_id": cfg.client_id, "post_logout_redirect_uri": cfg.home_url}
        if tokens.id_token:
            query["id_token_hint"] = tokens.id_token
        return redirect(end + "?" + urlencode(query))

    @app.errorhandler(PlatformError)
    def refused(exc: Exception) -> Any:
        log.warning("%s", exc)
        return render_template("error.html", reason="unreachable"), 503

    @app.errorhandler(requests.RequestException)
    def unreachable(exc: Exception) -> Any:
        log.warning("platform unreachable: %s", type(exc).__name__)
        return render_template("error.html", reason="unreachable"), 502

    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    # The development server's request lines carry query strings, and /callback's holds the
    # authorization code: keep them out of the log (only warnings and errors).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = int(os.environ.get("APP_PORT", "8010"))
    log.info("example app on http://127.0.0.1:%d/", port)
    create_app().run(host="127.0.0.1", port=port)
