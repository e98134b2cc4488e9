"""Nothing named by an unverified token causes an outbound request (issue 14, item 1).

A self-signed token's `iss` is whatever its sender wrote. The PHR server and the consent API
used to fetch `{iss}/.well-known/openid-federation` for an issuer they did not know: a probe of
internal addresses, and a way to tie up workers with issuers that never answer. Now an issuer
counts only when the federation lists it (federation/issuers.py); any other is refused at once,
whatever the string, and the witness listener it names is never contacted."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import requests
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey

from phr_core.config import load_settings
from tests.listener import Listener, listening
from tests.phr_server.conftest import World, stand_in

CHILD = [("C1", "self")]


def self_signed(iss: str, aud: str) -> str:
    """A well-formed RFC 9068 access token from a key nobody vouches for."""
    key = ECKey.generate_key("P-256", parameters={"kid": "attacker"}, private=True)
    now = int(time.time())
    claims = {
        "iss": iss,
        "aud": aud,
        "sub": "someone",
        "client_id": "app-1",
        "scope": "patient/*.rs grants:read grants:write",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "attacker"}, claims, key)


def _issuers_naming(witness: Listener) -> list[str]:
    base = witness.url
    return [
        base + "/x",
        base,
        base + "/x/../y",
        f"http://localhost:{witness.port}/z",
        *(f"{base}/varied-{n}" for n in range(5)),
    ]


def test_the_phr_server_fetches_nothing_a_token_names(world: World) -> None:
    aud = world.settings.urls["fhir"]
    with listening() as witness:
        for iss in _issuers_naming(witness):
            resp = world.client.get(
                "/Immunization", headers={"Authorization": "Bearer " + self_signed(iss, aud)}
            )
            assert resp.status_code == 401, resp.get_data(as_text=True)
            assert "outside the federation" in resp.headers["WWW-Authenticate"]
        time.sleep(0.3)  # anything started in the background has had time to arrive
        assert witness.connections == 0, witness.requests


def test_the_consent_api_fetches_nothing_a_token_names(
    app_factory: Callable[[str], Flask],
) -> None:
    consent = app_factory("consent")
    aud = consent.extensions["phr_settings"].urls["consent"]
    with listening() as witness:
        for iss in _issuers_naming(witness):
            resp = consent.test_client().get(
                "/api/v1/grants/g-1", headers={"Authorization": "Bearer " + self_signed(iss, aud)}
            )
            assert resp.status_code == 401, resp.get_data(as_text=True)
            assert resp.get_json()["error"] == "invalid_token"
            assert "outside the federation" in resp.get_json()["error_description"]
        time.sleep(0.3)
        assert witness.connections == 0, witness.requests


def test_reads_keep_succeeding_while_junk_issuer_tokens_flood_a_served_phr_server(
    world: World, family: dict[str, str]
) -> None:
    """The PHR server under gunicorn (one worker, its default threads), 16 threads sending
    tokens whose `iss` names a listener that accepts and never answers, each a different
    string; meanwhile a legitimate app reads. Every read answers 200 well within its timeout,
    every junk token 401, and the silent listener is never contacted."""
    with stand_in(world) as url, listening(mode="silent") as tarpit:
        env = {
            **os.environ,
            **world.settings.environ,
            "PHR_ISSUER": url,
            "PHR_CONSENT_URL": url,
            "PHR_WORKERS": "1",
            "PHR_LOG_LEVEL": "WARNING",
        }
        base = load_settings(env).urls["fhir"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.cli", "fhir", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        stop = threading.Event()
        junk_status: list[int] = []

        def flood(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                bad = self_signed(f"{tarpit.url}/junk-{n}-{i}", base)
                try:
                    r = requests.get(
                        base + "/Immunization",
                        headers={"Authorization": f"Bearer {bad}", "Connection": "close"},
                        timeout=30,
                    )
                    junk_status.append(r.status_code)
                except requests.RequestException:
                    junk_status.append(0)

        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(base + "/readyz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "did not start"
                time.sleep(0.2)
            world.user("sub-child", codes=CHILD)
            gid = next(iter(world.consent.grants))
            claims = {"sub": "sub-child", "client_id": "app-1", "scope": "patient/*.rs"}
            child = world.token({**claims, "grant_id": gid}, iss=url)
            read = base + world.path(family["urn:uuid:o3"])  # the app's own id
            assert requests.get(read, headers={"Authorization": f"Bearer {child}"}, timeout=10).ok
            flooders = [threading.Thread(target=flood, args=(n,)) for n in range(16)]
            for t in flooders:
                t.start()
            time.sleep(0.5)  # the flood is under way
            statuses = []
            for _ in range(20):
                # A read slowed into this timeout fails the test (requests raises).
                r = requests.get(read, headers={"Authorization": f"Bearer {child}"}, timeout=4)
                statuses.append(r.status_code)
        finally:
            stop.set()
            for t in locals().get("flooders", []):
                t.join(40)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert statuses == [200] * 20
        assert junk_status and set(junk_status) == {401}, sorted(set(junk_status))
        assert tarpit.connections == 0
