"""Every error path is refused per spec: RFC 6749 JSON at the token endpoint, redirects only to
verified redirect URIs, tampered and unsigned tokens rejected, replays revoke."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import update

from idp.models import AuthorizationCode
from idp.tokens import now_utc
from tests.idp.conftest import Browser, basic, code_request, pkce_pair


@pytest.fixture
def rp(register) -> dict:
    return register()


def _code(browser: Browser, rp: dict, **extra: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, **extra))
    return back["code"][0], verifier


def _exchange(app: Flask, rp: dict, code: str, verifier: str | None, **override):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT(rp)}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(override)
    headers = override.pop("headers", None) or basic(rp["client_id"], rp["client_secret"])
    data.pop("headers", None)
    return app.test_client().post("/token", data=data, headers=headers)


def REDIRECT(rp: dict) -> str:
    return rp["redirect_uris"][0]


def _oauth_error(resp, status: int, error: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert resp.get_json()["error"] == error
    assert resp.headers["Cache-Control"] == "no-store"


def test_unknown_client_is_a_page_not_a_redirect(idp_app: Flask, rp: dict) -> None:
    _, challenge = pkce_pair()
    req = code_request(rp, challenge, client_id="nobody")
    resp = idp_app.test_client().get("/authorize", query_string=req)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "unknown client_id" in resp.get_data(as_text=True)


def test_missing_pkce_is_redirected_as_invalid_request(rp: dict, browser: Browser) -> None:
    _, challenge = pkce_pair()
    req = code_request(rp, challenge)
    del req["code_challenge"]
    back = browser.authorize(**req)
    assert back["error"] == ["invalid_request"] and "PKCE" in back["error_description"][0]
    req = code_request(rp, challenge, code_challenge_method="plain")
    assert browser.authorize(**req)["error"] == ["invalid_request"]


def test_wrong_or_missing_code_verifier(idp_app: Flask, rp: dict, browser: Browser) -> None:
    code, verifier = _code(browser, rp)
    _oauth_error(_exchange(idp_app, rp, code, None), 400, "invalid_grant")
    code, verifier = _code(browser, rp)
    _oauth_error(
        _exchange(idp_app, rp, code, verifier[:-1] + ("B" if verifier.endswith("A") else "A")),
        400,
        "invalid_grant",
    )


def test_expired_code(idp_app: Flask, rp: dict, browser: Browser) -> None:
    code, verifier = _code(browser, rp)
    with idp_app.extensions["phr_db"].session() as s:
        s.execute(update(AuthorizationCode).values(expires_at=now_utc() - timedelta(seconds=1)))
    _oauth_error(_exchange(idp_app, rp, code, verifier), 400, "invalid_grant")


def test_code_of_another_client_or_redirect(idp_app: Flask, register, browser: Browser) -> None:
    rp = register()
    other = register("rp-2")
    code, verifier = _code(browser, rp)
    _oauth_error(
        _exchange(idp_app, other, code, verifier, headers=basic("rp-2", other["client_secret"])),
        400,
        "invalid_grant",
    )
    code, verifier = _code(browser, rp)
    resp = _exchange(idp_app, rp, code, verifier, redirect_uri="https://rp.example.jp/other")
    _oauth_error(resp, 400, "invalid_grant")


def test_wrong_client_secret(idp_app: Flask, rp: dict, browser: Browser) -> None:
    code, verifier = _code(browser, rp)
    resp = _exchange(idp_app, rp, code, verifier, headers=basic(rp["client_id"], "wrong"))
    _oauth_error(resp, 401, "invalid_client")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # The code was not spent by the failed attempt.
    assert _exchange(idp_app, rp, code, verifier).status_code == 200


def test_token_endpoint_request_shape(idp_app: Flask, rp: dict) -> None:
    c = idp_app.test_client()
    auth = basic(rp["client_id"], rp["client_secret"])
    resp = c.post("/token", json={"grant_type": "client_credentials"}, headers=auth)
    _oauth_error(resp, 400, "invalid_request")
    _oauth_error(c.post("/token", data={"grant_type": "password"}, headers=auth), 400,
                 "unsupported_grant_type")  # fmt: skip
    resp = c.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    _oauth_error(resp, 400, "unauthorized_client")


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = claims["scope"] + " patient/*.rs"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _alg_none(token: str) -> str:
    _, body, _ = token.split(".")
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    return f"{head}.{body}."


def test_tampered_and_unsigned_tokens_are_rejected(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    code, verifier = _code(browser, rp)
    at = _exchange(idp_app, rp, code, verifier).get_json()["access_token"]
    c = idp_app.test_client()
    assert c.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 200
    for bad in (_tamper(at), _alg_none(at), at[:-4] + ("BBBB" if at.endswith("AAAA") else "AAAA")):
        resp = c.get("/userinfo", headers={"Authorization": f"Bearer {bad}"})
        assert resp.status_code == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        intro = c.post(
            "/introspect", data={"token": bad}, headers=basic("rp-1", rp["client_secret"])
        )
        assert intro.get_json() == {"active": False}


def test_replayed_refresh_token_revokes_the_family(
    idp_app: Flask, rp: dict, browser: Browser
) -> None:
    code, verifier = _code(browser, rp, scope="openid offline_access")
    first = _exchange(idp_app, rp, code, verifier).get_json()
    c = idp_app.test_client()
    auth = basic(rp["client_id"], rp["client_secret"])

    def refresh(token: str):
        return c.post("/token", data={"grant_type": "refresh_token", "refresh_token": token},
                      headers=auth)  # fmt: skip

    second = refresh(first["refresh_token"]).get_json()
    assert "refresh_token" in second
    # An attacker replays the first (already rotated) refresh token…
    _oauth_error(refresh(first["refresh_token"]), 400, "invalid_grant")
    # …and the legitimate holder's newer tokens die with the family.
    _oauth_error(refresh(second["refresh_token"]), 400, "invalid_grant")
    resp = c.get("/userinfo", headers={"Authorization": "Bearer " + second["access_token"]})
    assert resp.status_code == 401


def test_consent_denied_and_login_required(idp_app: Flask, rp: dict) -> None:
    _, challenge = pkce_pair()
    denying = Browser(idp_app.test_client(), approve=False)
    back = denying.authorize(**code_request(rp, challenge))
    assert back["error"] == ["access_denied"] and "code" not in back
    assert back["iss"] == [idp_app.extensions["idp"].issuer]


def test_forms_need_their_csrf_token(idp_app: Flask, rp: dict) -> None:
    c = idp_app.test_client()
    _, challenge = pkce_pair()
    login = c.get("/authorize", query_string=code_request(rp, challenge)).headers["Location"]
    req = login.split("req=")[1]
    c.get(login)
    resp = c.post("/login/dev", data={"req": req, "person": "1", "csrf": "forged"})
    assert resp.status_code == 400


def test_internal_ids_never_leave(idp_app: Flask, rp: dict, browser: Browser) -> None:
    """The internal person id appears in no token, response or redirect."""
    from idp.endpoints.interaction import demo_person_id

    person = demo_person_id(1)
    code, verifier = _code(browser, rp, scope="openid offline_access patient/Immunization.rs")
    body = _exchange(idp_app, rp, code, verifier).get_json()
    c = idp_app.test_client()
    blobs = [json.dumps(body)]
    for token in (body["access_token"], body["id_token"]):
        blobs.append(base64.urlsafe_b64decode(token.split(".")[1] + "==").decode())
    blobs.append(
        c.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).get_data(
            as_text=True
        )
    )
    intro = c.post(
        "/introspect",
        data={"token": body["refresh_token"]},
        headers=basic("rp-1", rp["client_secret"]),
    )
    blobs.append(intro.get_data(as_text=True))
    for blob in blobs:
        assert person not in blob and person.replace("-", "") not in blob


@pytest.mark.parametrize(
    ("lang", "what", "todo"),
    [("ja", "登録されていません", "問い合わせてください"), ("en", "not registered", "contact")],
)
def test_authorize_refusals_explain_in_plain_words(
    idp_app: Flask, rp: dict, lang: str, what: str, todo: str
) -> None:
    """A refusal shown as a page (no redirect is safe) explains in the person's language what
    happened and what to do; the protocol's words stay below, in small print, for the app's
    developer."""
    _, challenge = pkce_pair()
    cases = {
        "unknown client_id": {"client_id": "nobody"},
        "redirect_uri is not registered for this client": {"redirect_uri": "https://x.example/cb"},
    }
    for detail, change in cases.items():
        req = {**code_request(rp, challenge, **change), "ui_locales": lang}
        page = idp_app.test_client().get("/authorize", query_string=req)
        html = page.get_data(as_text=True)
        assert page.status_code == 400 and "Location" not in page.headers
        message = re.search(r'<p id="message">([^<]+)</p>', html)
        assert message and todo in message.group(1), html
        assert detail not in message.group(1)  # the protocol's words are not the explanation
        assert re.search(
            rf'<p class="detail" id="detail">[^<]+<code lang="en">{detail}</code>', html
        )
        assert f'<html lang="{lang}">' in html
    req = {**code_request(rp, challenge, client_id="nobody"), "ui_locales": lang}
    assert what in idp_app.test_client().get("/authorize", query_string=req).get_data(as_text=True)
