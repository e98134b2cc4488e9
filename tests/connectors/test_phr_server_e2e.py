"""End to end against the real PHR server (phr_server, served over HTTP on loopback) with an
IdP stand-in that issues client-credentials tokens (client_secret_basic → RFC 9068 JWT with the
connector's municipality): a synthetic city loads, a re-run changes nothing, and only consented
people are in the server."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from connectors.http import TokenSource
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.transport import FhirTransport
from phr_core.config import Settings
from tests.browser import live_server
from tests.conftest import make_environ
from tests.connectors.helpers import CITY, KEY, codes_of, consents, make_city

CLIENT = f"connector-{CITY}"
SECRET = "connector-secret-for-tests"


@pytest.fixture
def idp() -> Iterator[dict[str, Any]]:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    app = Flask("idp_stand_in")
    state: dict[str, Any] = {"issued": 0}

    @app.get("/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return jsonify(KeySet([key]).as_dict(private=False))

    @app.post("/token")
    def token():  # type: ignore[no-untyped-def]
        want = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != want:
            return jsonify(error="invalid_client"), 401
        if request.form.get("grant_type") != "client_credentials":
            return jsonify(error="unsupported_grant_type"), 400
        now = int(time.time())
        claims = {
            "iss": state["iss"],
            "aud": state["aud"],
            "sub": CLIENT,
            "client_id": CLIENT,
            "scope": "system/*.write",
            "municipality": CITY,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        state["issued"] += 1
        tok = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, claims, key)
        return jsonify(access_token=tok, token_type="Bearer", expires_in=300)

    with live_server(app) as url:
        state["iss"] = url
        yield state


@pytest.fixture
def environ(tmp_path: Path, database_url: str, idp: dict[str, Any]) -> dict[str, str]:
    return make_environ(tmp_path, database_url, PHR_ISSUER=idp["iss"])


def test_synthetic_city_loads_into_the_phr_server(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip("phr_server.transaction")
    from phr_server.models import StoredResource
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=300, months=1)
    inputs = [p for p in sorted((tmp_path / "inbox").iterdir()) if detect_source(p)]

    def load(url: str) -> dict[str, int]:
        tokens = TokenSource(idp["iss"], CLIENT, SECRET)
        c = Connector(
            CITY,
            Pseudonymizer(KEY),
            consents(files["consents"]),
            FhirTransport(url, tokens),
            register_path=files["register"],
            report=Report(io.StringIO()),
        )
        total: dict[str, int] = {}
        for p in inputs:
            for k, v in vars(c.run_file(p)).items():
                total[k] = total.get(k, 0) + v
        return total

    with live_server(app) as url:
        first = load(url)
        assert first["rejected"] == 0, first
        assert first["created"] > 0 and first["sent"] > 0
        second = load(url)
        assert second["rejected"] == 0
        assert (second["created"], second["updated"]) == (0, 0)
        assert second["unchanged"] == first["created"] + first["updated"] + first["unchanged"]

    db = app.extensions["phr_db"]
    with db.session() as s:
        stored = s.scalars(select(StoredResource)).all()
        n_patients = sum(1 for r in stored if r.resource_type == "Patient")
    consented = set().union(
        *(consents(files["consents"]).codes(c) for c in ("mch", "immunization", "claims"))
    )
    assert 0 < n_patients <= len(consented)
    assert len(set(codes_of(files["register"]).values()) - consented) > 0  # some did not consent
    assert json.dumps(first)  # summary is plain data
