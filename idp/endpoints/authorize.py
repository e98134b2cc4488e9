"""Authorization endpoint (RFC 6749 4.1, OIDC Core 3.1.2) as a pipeline of named checks.

Until the client and its redirect URI are verified, errors are shown as a page; after that they
go back to the client as a redirect carrying `error`, `state` and `iss` (RFC 9207)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from idp import client_cache, federation, pkce, scopes, sessions
from idp.clients import ClientView, get_client
from idp.context import ACR_CARD, ACR_ORDER, AUTH_REQUEST_TTL, CODE_TTL, IdP, acr_satisfies, idp
from idp.errors import OAuthError, shown
from idp.grants import GrantUnavailable
from idp.i18n import MESSAGES, pick_language
from idp.keys import ALGS
from idp.models import AuthorizationCode, AuthRequest, Client, Grant
from idp.rows import insert_row, table_of
from idp.tokens import aware, new_handle, now_utc, sha256_hex
from phr_core.catalogs import text

bp = Blueprint("authorize", __name__, template_folder="../templates")

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"
REFUSAL = "idp.authorize.error"  # the catalog's words for PageError codes
IGNORED_SCOPES = scopes.IGNORED_SCOPES
# Claims data is the most sensitive: reading it needs the card, whatever the client asks.
CARD_ONLY_RESOURCES = ("ExplanationOfBenefit", "Claim", "Coverage")


class PageError(Exception):
    """An error that must not be redirected (unknown client or redirect URI). `code` keys the
    person's explanation (msgctxt idp.authorize.error); the message is the technical detail
    shown below it, for the app's developer."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass
class AuthzRequest:
    params: dict[str, str]
    client: ClientView | None = None
    redirect_uri: str = ""
    scope: list[str] = field(default_factory=list)
    prompt: set[str] = field(default_factory=set)
    max_age: int | None = None
    required_acr: str | None = None
    lang: str = "ja"
    hint_sub: str | None = None  # from id_token_hint: the person the client expects


# --- checks before the redirect URI is trusted ----------------------------------------------


def load_pushed_request(s: Session, req: AuthzRequest) -> None:
    uri = req.params.get("request_uri")
    if not uri:
        if req.params.get("_pushed_only") == "1":
            raise PageError("request_invalid", "this client must use pushed authorization requests")
        return
    if not uri.startswith(PAR_PREFIX):
        raise PageError("request_invalid", "request_uri is not one this server issued")
    row = s.get(AuthRequest, uri[len(PAR_PREFIX) :])
    if row is None or not row.pushed or aware(row.expires_at) < now_utc():
        raise PageError("request_invalid", "request_uri is unknown or expired")
    if row.client_id != req.params.get("client_id"):
        raise PageError("request_invalid", "request_uri belongs to another client")
    s.delete(row)  # single use
    req.params = dict(row.params)


def register_federated_client(s: Session, req: AuthzRequest) -> None:
    """OpenID Federation automatic registration, for a client_id that is an entity id and a
    signed request object (idp/federation.py); other requests pass unchanged."""
    try:
        req.params = federation.register_automatically(s, idp().settings, idp().issuer, req.params)
    except federation.RegistrationRefused as exc:
        raise PageError("federation_refused", str(exc)) from None


def check_client(s: Session, req: AuthzRequest) -> None:
    client = get_client(s, req.params.get("client_id", ""))
    if client is None:
        raise PageError("unknown_client", "unknown client_id")
    if "authorization_code" not in client.grant_types:
        raise PageError("not_code_flow", "this client may not use the authorization code flow")
    req.client = client


def check_redirect_uri(s: Session, req: AuthzRequest) -> None:
    assert req.client is not None  # noqa: S101 (check_client ran)
    uri = req.params.get("redirect_uri", "")
    if not uri:
        raise PageError("redirect_missing", "redirect_uri is required")
    if uri not in req.client.redirect_uris:  # exact string match, no patterns
        # The cached client may predate a redirect another process has just registered
        # (`phr dev example --port`, an RFC 7592 update at another worker): ask the database
        # before refusing, so only what is really unregistered is refused.
        client_cache.drop(s, req.client.client_id)
        fresh = get_client(s, req.client.client_id)
        if fresh is None or uri not in fresh.redirect_uris:
            raise PageError("redirect_unknown", "redirect_uri is not registered for this client")
        req.client = fresh
    req.redirect_uri = uri


# --- checks whose failures go back to the client ---------------------------------------------


def check_response_type(s: Session, req: AuthzRequest) -> None:
    if req.params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if req.params.get("response_mode", "query") != "query":
        raise OAuthError("invalid_request", "only response_mode=query is supported")


def check_request_object(s: Session, req: AuthzRequest) -> None:
    if "request" in req.params:
        raise OAuthError("request_not_supported", "request objects are not supported; use PAR")


def check_scope(s: Session, req: AuthzRequest) -> None:
    assert req.client is not None  # noqa: S101 - narrowing: check_client set it or refused
    # OIDC Core 5.4 claim scopes are ignored, not refused (idp.scopes.IGNORED_SCOPES).
    scope = [sc for sc in req.params.get("scope", "").split() if sc not in IGNORED_SCOPES]
    if not scope:
        raise OAuthError("invalid_scope", "scope is required")
    unknown = [sc for sc in scope if not scopes.is_known(sc)]
    if unknown:
        raise OAuthError("invalid_scope", f"unknown scope {shown(unknown[0])}")
    extra = [sc for sc in scope if sc not in req.client.allowed_scopes]
    if extra:
        raise OAuthError("invalid_scope", f"scope {shown(extra[0])} is not allowed for this client")
    if any(sc.startswith("system/") for sc in scope):
        raise OAuthError("invalid_scope", "system scopes need the client credentials grant")
    if not req.client.first_party:
        refusal = scopes.app_scope_refusal(scope)
        if refusal:
            raise OAuthError("invalid_scope", refusal)
    req.scope = list(dict.fromkeys(scope))


def check_pkce(s: Session, req: AuthzRequest) -> None:
    challenge = req.params.get("code_challenge", "")
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE)")
    if req.params.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if not pkce.valid_challenge(challenge):
        raise OAuthError("invalid_request", "code_challenge is malformed")


def check_dpop_jkt(s: Session, req: AuthzRequest) -> None:
    """RFC 9449 10: the code may be bound to the thumbprint of the client's DPoP key."""
    jkt = req.params.get("dpop_jkt")
    if jkt is not None and not pkce.valid_challenge(jkt):  # same shape: 43 base64url chars
        raise OAuthError("invalid_request", "dpop_jkt is malformed")


def check_prompt(s: Session, req: AuthzRequest) -> None:
    prompt = set(req.params.get("prompt", "").split())
    if not prompt <= {"none", "login", "consent", "select_account"}:
        raise OAuthError("invalid_request", "unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise OAuthError("invalid_request", "prompt=none cannot be combined with other values")
    req.prompt = prompt


def check_max_age(s: Session, req: AuthzRequest) -> None:
    raw = req.params.get("max_age")
    if raw is None or raw == "":
        return
    if not raw.isdigit():
        raise OAuthError("invalid_request", "max_age must be a non-negative integer")
    req.max_age = int(raw)


def check_acr(s: Session, req: AuthzRequest) -> None:
    """The strongest of: what the client demands, what a scope demands, the first supported
    value of `acr_values` (a voluntary request we honour by stepping up)."""
    assert req.client is not None  # noqa: S101 - narrowing: check_client set it or refused
    needs = [req.client.required_acr]
    for sc in req.scope:
        if any(f"/{r}." in sc for r in CARD_ONLY_RESOURCES):
            needs.append(ACR_CARD)
    asked = [a for a in req.params.get("acr_values", "").split() if a in ACR_ORDER]
    if asked:
        needs.append(asked[0])
    known = [n for n in needs if n in ACR_ORDER]
    req.required_acr = max(known, key=ACR_ORDER.index) if known else None


def check_ui_locales(s: Session, req: AuthzRequest) -> None:
    req.lang = pick_language(req.params.get("ui_locales"))


def check_id_token_hint(s: Session, req: AuthzRequest) -> None:
    """An ID token we issued to this client (expired is fine) names who should be signed in."""
    hint = req.params.get("id_token_hint")
    if not hint:
        return
    try:
        claims = jwt.decode(hint, idp().keys.verification_keys(), algorithms=list(ALGS)).claims
    except (JoseError, ValueError):
        raise OAuthError("invalid_request", "id_token_hint is not an ID token of ours") from None
    assert req.client is not None  # noqa: S101 - narrowing: check_client ran first
    if claims.get("iss") != idp().issuer or claims.get("aud") != req.client.client_id:
        raise OAuthError("invalid_request", "id_token_hint was issued to another client")
    req.hint_sub = claims.get("sub")


BEFORE_REDIRECT: list[Callable[[Session, AuthzRequest], None]] = [
    load_pushed_request,
    register_federated_client,
    check_client,
    check_redirect_uri,
]
AFTER_REDIRECT: list[Callable[[Session, AuthzRequest], None]] = [
    check_response_type,
    check_request_object,
    check_scope,
    check_pkce,
    check_dpop_jkt,
    check_prompt,
    check_max_age,
    check_acr,
    check_ui_locales,
    check_id_token_hint,
]


# --- the endpoint ----------------------------------------------------------------------------


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    # Underscore names are our own bookkeeping on parked requests; never from outside.
    params = {k: v for k, v in request.values.items() if not k.startswith("_")}
    with idp().db.session() as s:
        return _run(s, params, resumed=False)


@bp.get("/authorize/resume")
def resume() -> ResponseReturnValue:
    """Where sign-in and consent send the browser back to. When the decision may ask the
    consent service over HTTP, the parked request is taken in a transaction of its own: no
    write lock may be held while it asks. With grants kept here, one transaction does both."""
    ctx = idp()
    with ctx.db.session() as s:
        taken = _take_parked(s, request.args.get("req", ""))
        if taken is None:
            return expired_page()
        if not ctx.grants.calls_out:
            return _run(s, taken, resumed=True)
    with ctx.db.session() as s:
        return _run(s, taken, resumed=True)


_PARKED = table_of(AuthRequest)
_TAKE_PARKED = (  # built once: a third of the CPU of the same DELETE through the ORM
    delete(_PARKED)
    .where(_PARKED.c.id == bindparam("b_id"), _PARKED.c.pushed.is_(False))
    .returning(_PARKED.c.params, _PARKED.c.expires_at)
)


def _take_parked(s: Session, rid: str) -> dict[str, str] | None:
    """The parameters of parked request `rid`, taken (single use) with one statement; None if
    it is unknown, pushed (PAR is not for here) or expired (then it is gone too: it could
    not be finished anyway)."""
    taken = s.execute(_TAKE_PARKED, {"b_id": rid}).first()
    if taken is None or aware(taken.expires_at) < now_utc():
        return None
    return dict(taken.params)


def _run(s: Session, params: dict[str, str], *, resumed: bool) -> ResponseReturnValue:
    ctx = idp()
    req = AuthzRequest(params=params)
    try:
        for check in BEFORE_REDIRECT:
            check(s, req)
    except PageError as err:
        return refused_page(err.code, str(err), pick_language(params.get("ui_locales")))
    try:
        for check in AFTER_REDIRECT:
            check(s, req)
        return _decide(ctx, s, req, resumed=resumed)
    except OAuthError as err:
        return _redirect(ctx, req, {"error": err.error, "error_description": err.description})


def _decide(ctx: IdP, s: Session, req: AuthzRequest, *, resumed: bool) -> ResponseReturnValue:
    assert req.client is not None  # noqa: S101 - narrowing: check_client set it or refused
    login = sessions.current(s)
    just_signed_in = resumed and login is not None and req.params.get("_login_done") == "1"
    need_login = (
        login is None
        or ("login" in req.prompt and not just_signed_in)
        or (
            req.max_age is not None
            and not just_signed_in
            and now_utc() - aware(login.auth_time) > timedelta(seconds=req.max_age)
        )
        or not acr_satisfies(login.acr, req.required_acr)
        or (
            req.hint_sub is not None
            and req.hint_sub != ctx.subjects.subject(s, req.client.sector, login.person_id)
        )
    )
    if need_login:
        if "none" in req.prompt:
            raise OAuthError("login_required", "the person must sign in")
        return redirect(_interaction(s, req, "/login"))
    assert login is not None  # noqa: S101 - narrowing: need_login is true if login is None
    if req.client.first_party:
        # The platform's own portal (PHR sector, sign-in only): nothing to consent to, no grant.
        return _issue_code(ctx, s, req, login, None)
    # prompt=consent asks again whatever was granted before: no need to look for the grant.
    ask_again = "consent" in req.prompt and req.params.get("_consent_done") != "1"
    grant = (
        None if ask_again else _active_grant(s, login.person_id, req.client.client_id, req.scope)
    )
    need_consent = grant is None or ask_again
    if need_consent:
        if "none" in req.prompt:
            raise OAuthError("consent_required", "the person must approve this app")
        return redirect(_interaction(s, req, "/consent"))
    assert grant is not None  # noqa: S101 - narrowing: need_consent is true if grant is None
    return _issue_code(ctx, s, req, login, grant)


def _active_grant(s: Session, person_id: str, client_id: str, scope: list[str]) -> Grant | None:
    rows = s.scalars(
        select(Grant).where(
            Grant.person_id == person_id,
            Grant.client_id == client_id,
            Grant.revoked_at.is_(None),
        )
    ).all()
    now = now_utc()
    for g in rows:
        alive = g.expires_at is None or aware(g.expires_at) > now
        if alive and set(scope) <= set(g.scope.split()):
            try:
                if idp().grants.is_active(idp(), s, g):
                    return g
            except GrantUnavailable:
                raise OAuthError(
                    "temporarily_unavailable", "the consent service cannot be reached"
                ) from None
    return None


def _interaction(s: Session, req: AuthzRequest, path: str) -> str:
    """Park the validated request and send the browser to sign-in or consent."""
    rid = new_handle(24)
    params = dict(req.params)
    params.pop("request_uri", None)
    params["_required_acr"] = req.required_acr or ""
    assert req.client is not None  # noqa: S101 - narrowing: check_client ran first
    insert_row(
        s, AuthRequest, id=rid, client_id=req.client.client_id, params=params, pushed=False,
        expires_at=now_utc() + AUTH_REQUEST_TTL,
    )  # fmt: skip
    return f"{path}?{urlencode({'req': rid})}"


def _issue_code(
    ctx: IdP, s: Session, req: AuthzRequest, login: sessions.SignIn, grant: Grant | None
) -> ResponseReturnValue:
    client = req.client
    assert client is not None  # noqa: S101 - narrowing: check_client set it or refused
    code = new_handle(32)
    insert_row(
        s, AuthorizationCode, code_hash=sha256_hex(code), client_id=client.client_id,
        person_id=login.person_id, redirect_uri=req.redirect_uri, scope=" ".join(req.scope),
        nonce=req.params.get("nonce"), code_challenge=req.params["code_challenge"],
        grant_id=grant.id if grant else None, sid=login.sid, auth_time=aware(login.auth_time),
        acr=login.acr, amr=list(login.amr), dpop_jkt=req.params.get("dpop_jkt"),
        expires_at=now_utc() + CODE_TTL,
    )  # fmt: skip
    if not client.sector_locked:  # read once per client, not on every code (idp.client_cache)
        row = s.get(Client, client.client_id)
        if row is not None and not row.sector_locked:
            row.sector_locked = True  # subjects now exist in this sector; it may not change
    return _redirect(ctx, req, {"code": code})


def _redirect(ctx: IdP, req: AuthzRequest, values: dict[str, str]) -> ResponseReturnValue:
    values = dict(values)
    if req.params.get("state"):
        values["state"] = req.params["state"]
    values["iss"] = ctx.issuer
    sep = "&" if "?" in req.redirect_uri else "?"
    return redirect(req.redirect_uri + sep + urlencode(values), code=302)


def redirect_denied(ctx: IdP, params: dict[str, str]) -> ResponseReturnValue:
    """The person said no: tell the client (its redirect URI was verified when parked)."""
    req = AuthzRequest(params=params, redirect_uri=params["redirect_uri"])
    return _redirect(ctx, req, {"error": "access_denied", "error_description": "not approved"})


def expired_page() -> ResponseReturnValue:
    """A parked request that is gone: expired, already finished, or never ours."""
    detail = "this sign-in took too long or was already finished"
    return refused_page("expired", detail, pick_language())


def refused_page(code: str, detail: str, lang: str) -> ResponseReturnValue:
    """Why sign-in stopped, in plain words with what to do; the protocol's words below."""
    return error_page(
        text(lang, REFUSAL, code),
        400,
        lang,
        title=text(lang, REFUSAL, "title"),
        detail=(text(lang, REFUSAL, "detail"), detail),
    )


def error_page(
    message: str,
    status: int,
    lang: str = "ja",
    *,
    title: str | None = None,
    detail: tuple[str, str] | None = None,
) -> ResponseReturnValue:
    """An error page: `title` (default: the IdP's "error"), the message, and an optional
    (label, text) technical detail in small print below it."""
    return (
        render_template(
            "idp_error.html",
            t=MESSAGES[lang],
            lang=lang,
            title=title,
            message=message,
            detail=detail,
        ),
        status,
    )
