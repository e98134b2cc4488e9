"""Every service as two replicas behind HAProxy on one PostgreSQL (`phr dev run --replicas 2`,
no sticky sessions): what must be global is global. Each test sends the two halves of what it
checks to different replicas (directly, or through HAProxy's round robin and then asserting both
answered), so per-process state would make it fail.

One platform for the module (tests/launcher/replica_platform.py): about a minute to start."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey

from connectors.client_key import ClientAssertion, load_signing_key
from phr_core.dpop import thumbprint
from phr_core.sealing import own_key
from phr_core.tokens import access_token_cipher, unseal
from tests.launcher.replica_platform import TIMEOUT, Replicas, count

pytestmark = pytest.mark.slow

APP = "demo-vaccination-app"
REDIRECT = "http://127.0.0.1:8010/callback"
PARENT = "1"  # the demo family's parent (development sign-in number)
STRANGER = "4"
REVOCATION_BOUND_S = 5.0 + 1.0  # consent/API.md: the PHR server's cache, the change-log poll
KEY_RELOAD_BOUND_S = 30.0  # `phr idp rotate-keys`: "within 30 seconds" (idp.keys.CACHE_TTL_S)


class Holder:
    """An app's DPoP key."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.public = self.key.as_dict(private=False)
        self.jkt = thumbprint(self.public)

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time()),
        }  # fmt: skip
        if access_token:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public}, claims, self.key)


def _form(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, html[:400]
    return m.group(1)


def authorize(r: Replicas, browser: requests.Session, person: str) -> tuple[str, str, set[str]]:
    """An app's authorization-code flow through HAProxy (dev sign-in and consent screen, each
    page and form post on whichever replica is next). Returns the code, the PKCE verifier and
    the IdP replicas that answered."""
    idp = r.front["idp"]
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    seen = set()
    resp = browser.get(
        idp + "/authorize",
        params={
            "response_type": "code", "client_id": APP, "redirect_uri": REDIRECT,
            "scope": "openid offline_access patient/Immunization.rs", "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256",
        },
        allow_redirects=False, timeout=TIMEOUT,
    )  # fmt: skip
    for _ in range(8):
        seen.add(r.served_by(resp))
        location = resp.headers["Location"]
        if location.startswith(REDIRECT):
            return parse_qs(urlsplit(location).query)["code"][0], verifier, seen
        url = idp + location if location.startswith("/") else location
        page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        seen.add(r.served_by(page))
        if page.status_code == 302:
            resp = page
            continue
        assert page.status_code == 200, page.text[:300]
        req = parse_qs(urlsplit(location).query)["req"][0]
        if "/login" in location:
            data = {"csrf": _form(page.text, "csrf"), "req": req, "person": person}
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=10)
        else:
            data = {"csrf": _form(page.text, "csrf"), "req": req, "decision": "allow"}
            if 'name="patient"' in page.text:  # a parent chooses whose record (the first)
                data["patient"] = _form(page.text, "patient")
            resp = browser.post(f"{idp}/consent", data=data, allow_redirects=False, timeout=10)
        assert resp.status_code in (302, 303), resp.text[:300]
    raise AssertionError("too many redirects")


def redeem(
    idp: str, code: str, verifier: str, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        idp + "/token",
        data={"grant_type": "authorization_code", "client_id": APP, "code": code,
              "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers=headers or {}, timeout=TIMEOUT,
    )  # fmt: skip


def refresh(idp: str, token: str) -> requests.Response:
    return requests.post(
        idp + "/token",
        data={"grant_type": "refresh_token", "client_id": APP, "refresh_token": token},
        timeout=TIMEOUT,
    )


def claims_of(r: Replicas, access_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of an access token, opened with the PHR server's keys."""
    keys = (
        access_token_cipher(r.settings.secret("PHR_ACCESS_TOKEN_KEY")),
        own_key(r.settings, "FHIR"),
    )
    signed = unseal(access_token, keys)
    head, body = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in signed.split(".")[:2])
    return head, body


def app_tokens(r: Replicas, person: str) -> dict[str, Any]:
    code, verifier, _ = authorize(r, requests.Session(), person)
    resp = redeem(r.front["idp"], code, verifier)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_every_service_alternates_between_its_replicas(replicas: Replicas) -> None:
    for name, url in replicas.front.items():
        with requests.Session() as keep_alive:  # one connection: still balanced per request
            seen = [replicas.served_by(keep_alive.get(url + "/readyz", timeout=TIMEOUT))]
            seen += [replicas.served_by(keep_alive.get(url + "/readyz", timeout=TIMEOUT))]
        assert sorted(seen) == ["r1", "r2"], (name, seen)
        assert len(replicas.direct[name]) == 2


def test_idp_session_and_csrf_cross_replicas_and_a_code_is_used_once(replicas: Replicas) -> None:
    code, verifier, seen = authorize(replicas, requests.Session(), STRANGER)
    assert seen == {"r1", "r2"}  # the sign-in and consent pages were split between replicas
    first, second = replicas.direct["idp"]
    assert redeem(first, code, verifier).status_code == 200
    again = redeem(second, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text


def test_refresh_token_reuse_is_detected_on_the_other_replica(replicas: Replicas) -> None:
    tokens = app_tokens(replicas, STRANGER)
    first, second = replicas.direct["idp"]
    rotated = refresh(first, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    replay = refresh(second, tokens["refresh_token"])  # the spent one, at the other replica
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # Reuse revoked the family: the token issued on the first replica is dead there too.
    assert refresh(first, rotated.json()["refresh_token"]).status_code == 400


def test_a_dpop_proof_is_used_once_across_phr_server_replicas(replicas: Replicas) -> None:
    holder = Holder()
    code, verifier, _ = authorize(replicas, requests.Session(), STRANGER)
    token_url = replicas.settings.issuer + "/token"
    resp = redeem(replicas.front["idp"], code, verifier, {"DPoP": holder.proof("POST", token_url)})
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text
    access = resp.json()["access_token"]
    url = replicas.settings.urls["fhir"].rstrip("/") + "/Immunization"  # the public htu
    proof = holder.proof("GET", url, access)
    headers = {"Authorization": "DPoP " + access, "DPoP": proof}
    first, second = replicas.direct["fhir"]
    assert (
        requests.get(first + "/Immunization", headers=headers, timeout=TIMEOUT).status_code == 200
    )
    replay = requests.get(second + "/Immunization", headers=headers, timeout=TIMEOUT)
    assert replay.status_code == 401 and "invalid_dpop_proof" in replay.headers["WWW-Authenticate"]


def test_a_client_assertion_is_used_once_across_idp_replicas(replicas: Replicas) -> None:
    s = replicas.settings
    signer = ClientAssertion(
        s.option("PHR_CONNECTOR_CLIENT_ID"), load_signing_key(s.secret("PHR_CONNECTOR_SIGNING_KEY"))
    )
    form = {
        "grant_type": "client_credentials", "scope": "system/*.cu",
        "resource": s.urls["fhir"], **signer.form(s.issuer + "/token"),
    }  # fmt: skip
    first, second = replicas.direct["idp"]
    assert requests.post(first + "/token", data=form, timeout=TIMEOUT).status_code == 200
    replay = requests.post(second + "/token", data=form, timeout=TIMEOUT)
    assert replay.status_code == 401 and "already used" in replay.json()["error_description"]


def test_attempt_limits_count_failures_from_every_replica(replicas: Replicas) -> None:
    first, second = replicas.direct["idp"]
    form = {"grant_type": "client_credentials", "client_id": "replica-test-nobody",
            "client_secret": "wrong"}  # fmt: skip
    statuses = [
        requests.post((first, second)[i % 2] + "/token", data=form, timeout=TIMEOUT).status_code
        for i in range(20)  # the token endpoint's limit: 10 failures at each replica
    ]
    assert set(statuses) == {401}, statuses
    for replica in (first, second):
        refused = requests.post(replica + "/token", data=form, timeout=TIMEOUT)
        assert refused.status_code == 429 and "Retry-After" in refused.headers, refused.text


def test_portal_session_and_revocation_reach_every_replica(replicas: Replicas) -> None:
    portal, idp = replicas.front["consent"], replicas.front["idp"]
    browser = requests.Session()
    seen = set()
    resp = browser.get(portal + "/auth/login", allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):  # the portal's sign-in: state and nonce in its cookie, tokens in the DB
        seen.add(replicas.served_by(resp))
        if resp.status_code == 200:
            break
        location = resp.headers["Location"]
        url = (idp if "req=" in location else portal) + location if location[0] == "/" else location
        if url.startswith(idp) and "/login" in url:
            page = browser.get(url, timeout=TIMEOUT)
            req = parse_qs(urlsplit(url).query)["req"][0]
            data = {"csrf": _form(page.text, "csrf"), "req": req, "person": PARENT}
            resp = browser.post(f"{idp}/login/dev", data=data, allow_redirects=False, timeout=10)
        else:
            resp = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:300]

    access = app_tokens(replicas, PARENT)["access_token"]
    grant_id = claims_of(replicas, access)[1]["grant_id"]
    bearer = {"Authorization": "Bearer " + access}
    for fhir in replicas.direct["fhir"]:  # both replicas hold the grant as active in cache
        assert requests.get(fhir + "/Immunization", headers=bearer, timeout=TIMEOUT).ok

    apps = browser.get(portal + "/me/apps", timeout=TIMEOUT)
    seen.add(replicas.served_by(apps))
    assert f"/me/apps/{grant_id}/revoke" in apps.text
    revoked = browser.post(
        f"{portal}/me/apps/{grant_id}/revoke",
        data={"csrf": _form(apps.text, "csrf")},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert revoked.status_code in (302, 303), revoked.text[:300]
    seen.add(replicas.served_by(revoked))
    assert seen == {"r1", "r2"}  # the portal's session and CSRF token crossed replicas
    started = time.monotonic()
    # Every replica asked until past the bound, each answer by when its request was sent: a
    # loaded machine may send few requests, but none sent after the bound may be served.
    answers: list[tuple[float, str, int]] = []
    fhirs = set(replicas.direct["fhir"])
    while {f for s, f, _ in answers if s > REVOCATION_BOUND_S} != fhirs:
        assert time.monotonic() - started < REVOCATION_BOUND_S + 60, answers  # a backstop
        for fhir in fhirs:
            sent = time.monotonic() - started
            answer = requests.get(fhir + "/Immunization", headers=bearer, timeout=TIMEOUT)
            answers.append((sent, fhir, answer.status_code))
        time.sleep(0.2)
    late = [(sent, fhir, code) for sent, fhir, code in answers if sent > REVOCATION_BOUND_S]
    assert late and all(code == 403 for _, _, code in late), answers
    assert {fhir for _, fhir, code in answers if code == 403} == fhirs
    first = max(min(s for s, f, c in answers if f == fhir and c == 403) for fhir in fhirs)
    print(f"revocation refused by both PHR server replicas after {first:.2f} s")  # -rP shows it


def test_every_read_on_every_replica_is_audited(replicas: Replicas) -> None:
    bearer = {"Authorization": "Bearer " + app_tokens(replicas, STRANGER)["access_token"]}
    sql = "SELECT count(*) FROM fhir_resource WHERE resource_type = 'AuditEvent'"
    before = count(replicas, sql)
    seen = []
    with requests.Session() as browser:
        for _ in range(10):
            resp = browser.get(
                replicas.front["fhir"] + "/Immunization", headers=bearer, timeout=TIMEOUT
            )
            assert resp.status_code == 200
            seen.append(replicas.served_by(resp))
    assert sorted(set(seen)) == ["r1", "r2"]
    deadline = time.monotonic() + 5  # written before each answer; a queue would show here
    while count(replicas, sql) - before < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count(replicas, sql) - before == 10


def test_federation_statements_are_the_same_on_every_replica(replicas: Replicas) -> None:
    def payload(url: str) -> dict[str, Any]:
        resp = requests.get(url + "/.well-known/openid-federation", timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
        return dict(json.loads(base64.urlsafe_b64decode(resp.text.split(".")[1] + "==")))

    for name in ("federation", "fhir", "idp"):
        one, two = (payload(u) for u in replicas.direct[name])
        assert one["sub"] == two["sub"] and one["jwks"] == two["jwks"], name
        listed = [requests.get(u + "/list", timeout=TIMEOUT) for u in replicas.direct[name]]
        if name == "federation":
            assert listed[0].json() == listed[1].json() and listed[0].json()


def test_a_key_rotation_is_seen_by_both_idp_replicas(replicas: Replicas) -> None:
    """Last in the module: `phr idp rotate-keys --force` ran when the platform started, so most
    of the 30 s reload bound has passed; each IdP replica is asked until it signs with a new key."""
    assert replicas.new_kids, "rotate-keys printed no key ids"
    s = replicas.settings
    signer = ClientAssertion(
        s.option("PHR_CONNECTOR_CLIENT_ID"), load_signing_key(s.secret("PHR_CONNECTOR_SIGNING_KEY"))
    )

    def token_from(idp: str) -> str:
        form = {
            "grant_type": "client_credentials", "scope": "system/*.cu",
            "resource": s.urls["fhir"], **signer.form(s.issuer + "/token"),
        }  # fmt: skip
        resp = requests.post(idp + "/token", data=form, timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    deadline = replicas.rotated_at + KEY_RELOAD_BOUND_S + 1
    for idp in replicas.direct["idp"]:
        while claims_of(replicas, token := token_from(idp))[0]["kid"] not in replicas.new_kids:
            assert time.monotonic() < deadline, f"{idp} still signs with the old key"
            time.sleep(0.5)
        for fhir in replicas.direct["fhir"]:  # each PHR server replica knows the new key
            answer = requests.get(
                fhir + "/Patient", headers={"Authorization": "Bearer " + token}, timeout=TIMEOUT
            )
            assert answer.status_code != 401, answer.text
    one, two = (requests.get(u + "/jwks", timeout=TIMEOUT).json() for u in replicas.direct["idp"])
    assert one == two
