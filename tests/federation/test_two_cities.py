"""Done-when of issue 8's two cities: an app known only to the federation signs a citizen in
once, finds each city's PHR server through the federation, gets a token per server and reads
the moved family's records from both, without being registered at either.

Real apps on loopback (werkzeug threads), talking HTTP as deployed: the anchor, the IdP, the
consent service, the first city's PHR server on the test database and the second city's on a
database of its own (both backends), with `phr dev run`'s demo data for both cities; and once
more against `phr dev run` itself."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from joserfc import jwt
from werkzeug.serving import make_server

from federation import jose, keys, trust_marks
from federation.authority import store
from federation.directory import Directory, home_server
from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from launcher import second_city
from launcher.demo import load_all
from phr_core import migrations
from phr_core.config import Settings, load_settings
from phr_core.demo_data import DEMO_MUNICIPALITY, SECOND_MUNICIPALITY
from phr_core.services import SERVICES, get_service
from phr_server.demo_family import CHILD_ID, MOVED_CHILD_ID, MOVED_PARENT_ID, PARENT_ID
from tests.conftest import (
    _fresh_postgres,
    _postgres_servers,
    create_app,
    free_port,
    make_environ,
)
from tests.dev_platform import DevPlatform
from tests.federation.conftest import LeafEntity, new_key, rp_metadata
from tests.idp.conftest import pkce_pair

TIMEOUT = 10
SCOPE = (
    "openid offline_access launch/patient patient/Patient.rs patient/Immunization.rs "
    "patient/Observation.rs"
)
A, B = DEMO_MUNICIPALITY.code, SECOND_MUNICIPALITY.code


@pytest.fixture
def second_database_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """The second city's PHR server's own database, on the backend under test."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'city-b.db'}"
        return
    yield from _fresh_postgres(_postgres_servers()[0])


class TwoCities:
    """Both cities' settings and the running services' URLs."""

    def __init__(self, first: Settings, second: Settings, app: LeafEntity) -> None:
        self.first, self.second, self.app = first, second, app
        self.issuer = first.issuer
        self.fhir = {A: first.urls["fhir"], B: second.urls["fhir"]}


@contextmanager
def serving(apps: dict[str, Flask]) -> Iterator[None]:
    servers = []
    for url, app in apps.items():
        port = int(url.rsplit(":", 1)[1])
        server = make_server("127.0.0.1", port, app, threaded=True)  # type: ignore[arg-type]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
    try:
        yield
    finally:
        for server, thread in servers:
            server.shutdown()
            thread.join(5)


def _certify(anchor: Flask, app: LeafEntity) -> None:
    """The anchor vouches for the app and gives it the 'certified PHR app' mark: all the app
    ever registers, once, with the federation."""
    with anchor.extensions["phr_db"].session() as s:
        store.add(s, app.entity_id, app.jwks, entity_types=["openid_relying_party"])
        store.record_mark(s, trust_marks.CERTIFIED_PHR_APP, app.entity_id, 3600)
    mark = anchor.test_client().get(
        "/trust_mark",
        query_string={"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "sub": app.entity_id},
    )
    app.trust_marks = [
        {"trust_mark_type": trust_marks.CERTIFIED_PHR_APP, "trust_mark": mark.get_data(True)}
    ]


@pytest.fixture
def two_cities(tmp_path: Path, database_url: str, second_database_url: str) -> Iterator[TwoCities]:
    env = make_environ(tmp_path, database_url)
    first = load_settings(env)
    for svc in SERVICES:
        migrations.upgrade(svc, first.database_urls[svc.name])
    # The second city's PHR server as `phr dev run` configures it, on its own test database.
    city_env = {**second_city.environ(first, B), "PHR_FHIR_DATABASE_URL": second_database_url}
    second = load_settings({**env, **city_env})
    second_city.settings_of(first)  # makes the second city's own development keys
    load_all(first, family=True)
    second_city.load_demo(first, family=True, city=second)

    from idp import app as idp_module

    idp_module.prepare(first)
    app_id = f"http://127.0.0.1:{free_port()}"
    key = new_key()
    metadata = rp_metadata(app_id, key, scope=SCOPE,
                           grant_types=["authorization_code", "refresh_token"])  # fmt: skip
    app = LeafEntity(app_id, key, metadata, [first.urls["federation"]])
    built = {
        first.urls["federation"]: create_app(get_service("federation"), first),
        first.issuer: create_app(get_service("idp"), first),
        first.urls["consent"]: create_app(get_service("consent"), first),
        first.urls["fhir"]: create_app(get_service("fhir"), first),
        second.urls["fhir"]: create_app(get_service("fhir"), second),
    }
    _certify(built[first.urls["federation"]], app)
    try:
        with serving({**built, app_id: app.app()}):
            yield TwoCities(first, second, app)
    finally:
        for flask_app in built.values():
            flask_app.extensions["phr_db"].dispose()


# --- what the app does ----------------------------------------------------------------------


def _request_object(c: TwoCities, challenge: str) -> str:
    now = int(time.time())
    claims = {
        "iss": c.app.entity_id, "aud": c.issuer, "client_id": c.app.entity_id,
        "iat": now, "exp": now + 300, "jti": secrets.token_urlsafe(12),
        "response_type": "code", "redirect_uri": c.app.entity_id + "/callback",
        "scope": SCOPE, "state": "s1", "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    header = {"alg": "ES256", "kid": c.app.key.kid, "typ": "oauth-authz-req+jwt"}
    return jwt.encode(header, claims, c.app.key)


def _client_assertion(c: TwoCities) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": c.app.entity_id, "sub": c.app.entity_id, "aud": c.issuer + "/token",
        "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(12),
    }  # fmt: skip
    return {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode({"alg": "ES256", "kid": c.app.key.kid}, claims, c.app.key),
    }


def _form(html: str, name: str) -> str:
    import re

    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, html[:400]
    return m.group(1)


def _sign_in(c: TwoCities, patient: str) -> tuple[str, str]:
    """The citizen (development sign-in: the demo parent) signs in once at the IdP and, on the
    consent screen, allows the app and picks the record to open it on; returns the code and
    the PKCE verifier."""
    verifier, challenge = pkce_pair()
    browser = requests.Session()
    resp = browser.get(
        c.issuer + "/authorize",
        params={"client_id": c.app.entity_id, "response_type": "code", "scope": SCOPE,
                "request": _request_object(c, challenge)},
        allow_redirects=False, timeout=TIMEOUT,
    )  # fmt: skip
    for _ in range(8):
        assert resp.status_code in (302, 303), resp.text[:400]
        location = resp.headers["Location"]
        if location.startswith(c.app.entity_id + "/callback"):
            query = parse_qs(urlsplit(location).query)
            assert "code" in query, query
            return query["code"][0], verifier
        url = c.issuer + location if location.startswith("/") else location
        page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, page.text[:400]
        req = parse_qs(urlsplit(url).query)["req"][0]
        data = {"csrf": _form(page.text, "csrf"), "req": req}
        if "/login" in url:
            data["person"] = "1"  # DEMO_FAMILY.parent_citizen
            resp = browser.post(c.issuer + "/login/dev", data=data, allow_redirects=False,
                                timeout=TIMEOUT)  # fmt: skip
        else:
            assert SECOND_MUNICIPALITY.name_ja in page.text  # both cities' records offered
            data.update(decision="allow", patient=patient)
            resp = browser.post(c.issuer + "/consent", data=data, allow_redirects=False,
                                timeout=TIMEOUT)  # fmt: skip
    raise AssertionError("too many redirects")


def _token(c: TwoCities, **form: str) -> dict[str, Any]:
    resp = requests.post(c.issuer + "/token", data={**form, **_client_assertion(c)},
                         timeout=TIMEOUT)  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()


def _discover(c: TwoCities) -> dict[str, tuple[str, ...]]:
    """The app's view of the federation: every PHR server under the anchor whose chain
    validates, with the municipalities the anchor lets it claim (anchor /list, each entity
    configuration and its statement, metadata policy applied)."""
    anchor = c.first.urls["federation"]
    fetcher = UrlFetcher(allow_http_loopback=True)
    anchor_keys = jose.public_jwks(keys.entity_key(c.first, "federation"))  # from the anchor
    directory = Directory(home_server(c.fhir[A]), fetcher, Resolver(fetcher, {anchor: anchor_keys}))
    return {s.resource: s.municipalities for s in directory.servers()}


def _get(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def _subjects(bundle: dict[str, Any], field: str) -> set[str]:
    return {e["resource"][field]["reference"] for e in bundle.get("entry", [])}


def test_one_app_reads_the_moved_family_from_both_cities(two_cities: TwoCities) -> None:
    _app_reads_both_cities(two_cities)


@pytest.mark.slow  # `phr dev run` with both cities
def test_the_same_in_the_running_development_setup(dev_platform: DevPlatform) -> None:
    """`phr dev run` itself (every service under gunicorn, the second city's own processes) on
    its embedded default, SQLite (tests/launcher/test_run.py covers PostgreSQL): the anchor
    vouches for the app, and the app does the same as above."""
    env = dev_platform.env
    app_id = f"http://127.0.0.1:{free_port()}"
    key = new_key()
    metadata = rp_metadata(app_id, key, scope=SCOPE,
                           grant_types=["authorization_code", "refresh_token"])  # fmt: skip
    app = LeafEntity(app_id, key, metadata, [f"http://127.0.0.1:{env['PHR_FEDERATION_PORT']}"])
    first = load_settings({**os.environ, **env})
    second = second_city.settings_of(first)
    assert second is not None
    anchor = create_app(get_service("federation"), first)
    try:
        _certify(anchor, app)
    finally:
        anchor.extensions["phr_db"].dispose()
    with serving({app_id: app.app()}):
        _app_reads_both_cities(TwoCities(first, second, app))


def _app_reads_both_cities(c: TwoCities) -> None:
    servers = _discover(c)
    assert servers == {c.fhir[A]: (A,), c.fhir[B]: (B,)}, servers

    code, verifier = _sign_in(c, patient=CHILD_ID)  # the child's record in the first city
    first = _token(c, grant_type="authorization_code", code=code, code_verifier=verifier,
                   redirect_uri=c.app.entity_id + "/callback")  # fmt: skip
    child = first["patient"]  # the app's own (pairwise) id of the child's first-city record
    assert child != CHILD_ID
    # One sign-in, a token per server: the refresh token, with RFC 8707 `resource`.
    tokens = {c.fhir[A]: first["access_token"]}
    refresh = first["refresh_token"]
    for resource in servers:
        if resource in tokens:
            continue
        more = _token(c, grant_type="refresh_token", refresh_token=refresh, resource=resource)
        refresh = more["refresh_token"]
        tokens[resource] = more["access_token"]

    # The first city: the child's vaccinations before the move, nothing of the parent's.
    a = _get(c.fhir[A] + "/Immunization", tokens[c.fhir[A]])
    assert a.status_code == 200, a.text
    assert _subjects(a.json(), "patient") == {f"Patient/{child}"}
    assert len(a.json()["entry"]) >= 10
    # The second city: the same child's record there (another code, another Patient), found
    # from the launch patient the person chose in the first city; the parent's stays closed.
    b = _get(c.fhir[B] + "/Immunization", tokens[c.fhir[B]])
    assert b.status_code == 200, b.text
    (moved,) = _subjects(b.json(), "patient")  # the app's id of the child's second record
    assert moved not in (f"Patient/{child}", f"Patient/{MOVED_CHILD_ID}")
    assert {e["resource"]["vaccineCode"]["coding"][0]["code"] for e in b.json()["entry"]} == {
        "VZV", "PCV20", "DPT-IPV-Hib"
    }  # fmt: skip
    obs = _get(c.fhir[B] + "/Observation", tokens[c.fhir[B]]).json()
    assert _subjects(obs, "subject") == {moved}
    for stored in (MOVED_PARENT_ID, PARENT_ID, MOVED_CHILD_ID, CHILD_ID):
        assert stored not in json.dumps(obs)
    patients = _get(c.fhir[B] + "/Patient", tokens[c.fhir[B]]).json()
    assert [f"Patient/{e['resource']['id']}" for e in patients["entry"]] == [moved]

    # Each token is for its own server only.
    wrong = _get(c.fhir[B] + "/Immunization", tokens[c.fhir[A]])
    assert wrong.status_code == 401 and wrong.json()["resourceType"] == "OperationOutcome"
    # A server nobody in the federation vouches for gets no token.
    stranger = requests.post(
        c.issuer + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh,
              "resource": "http://127.0.0.1:9/fhir", **_client_assertion(c)},
        timeout=TIMEOUT,
    )  # fmt: skip
    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_target"


def test_each_city_server_takes_only_its_own_city(two_cities: TwoCities) -> None:
    """The second city's connector writes to its own server; at the first city's server it is
    refused, and the first city's connector is refused at the second city's."""
    c = two_cities
    from tests.phr_server.conftest import patient, transaction

    def connector_token(settings: Settings, resource: str) -> str:
        from connectors.client_key import ClientAssertion, load_signing_key
        from connectors.http import TokenSource

        client_id = settings.option("PHR_CONNECTOR_CLIENT_ID")
        key = load_signing_key(settings.secret("PHR_CONNECTOR_SIGNING_KEY"))
        source = TokenSource(settings.issuer, client_id, signer=ClientAssertion(client_id, key))
        return source.token(resource, scope="system/*.write")

    b_token = connector_token(c.second, c.fhir[B])
    bundle = transaction(patient("urn:uuid:n", "NEW-1", muni=B))
    ok = requests.post(c.fhir[B], json=bundle, timeout=TIMEOUT,
                       headers={"Authorization": f"Bearer {b_token}"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    for who, server, municipality in ((c.second, A, B), (c.first, B, A)):
        token = connector_token(who, c.fhir[server])
        resp = requests.post(
            c.fhir[server],
            json=transaction(patient("urn:uuid:n", "NEW-2", muni=municipality)),
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        assert resp.status_code == 403, resp.text
        assert "does not hold records of municipality " + municipality in resp.text
