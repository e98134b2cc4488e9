"""PHR server fixtures: a real IdP stand-in (an EC P-256 key whose JWKS a live loopback server
publishes), tokens signed with it, the consent contract in process, and a small world: the demo
city's connector, a parent with one child, and a stranger."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from phr_core.config import Settings
from phr_core.identifiers import pseudonym_system, source_record_system
from phr_core.pairwise_ids import CLAIM, SectorIds, derive_sector_key, encode_key, for_key
from phr_core.tokens import AccessToken
from phr_server.policy import Access, Grant, InMemoryConsentDirectory, PatientLink, parse_scope
from tests.browser import live_server
from tests.conftest import make_environ

MUNI = "072028"
OTHER_MUNI = "072010"


class Issuer:
    """Signs access tokens the way the IdP does (RFC 9068), with a key it can rotate."""

    def __init__(self) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)]
        self.url = ""

    def jwks(self) -> dict[str, Any]:
        return KeySet(self.keys).as_dict(private=False)

    def rotate(self) -> None:
        kid = f"k{len(self.keys) + 1}"
        self.keys.insert(0, ECKey.generate_key("P-256", parameters={"kid": kid}, private=True))

    def sign(self, claims: dict[str, Any], key: ECKey | None = None) -> str:
        key = key or self.keys[0]
        header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key)


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    iss = Issuer()
    app = Flask("idp_stand_in")

    @app.get("/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return app.response_class(json.dumps(iss.jwks()), mimetype="application/json")

    with live_server(app) as url:
        iss.url = url
        yield iss


@pytest.fixture
def environ(tmp_path: Path, database_url: str, issuer: Issuer) -> dict[str, str]:
    level = os.environ.get("PHR_LOG_LEVEL", "INFO")
    # One deployment serving two municipalities, each a tenant (phr_server/tenants.py).
    return make_environ(
        tmp_path,
        database_url,
        PHR_ISSUER=issuer.url,
        PHR_LOG_LEVEL=level,
        PHR_FHIR_MUNICIPALITIES=f"{MUNI} {OTHER_MUNI}",
    )


@dataclass
class World:
    app: Flask
    settings: Settings
    issuer: Issuer
    consent: InMemoryConsentDirectory

    @property
    def client(self):  # type: ignore[no-untyped-def]
        return self.app.test_client()

    def token(self, claims: dict[str, Any], **over: Any) -> str:
        now = int(time.time())
        base = {
            "iss": self.settings.issuer,
            "aud": self.settings.urls["fhir"],
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        full = {**base, **claims, **over}
        if full.get("grant_id") and CLAIM not in full and full.get("client_id"):
            # as the IdP does for an app's token: the key of the app's sector (pairwise ids)
            full[CLAIM] = encode_key(sector_key(str(full["client_id"])))
        return self.issuer.sign(full)

    def connector(self, muni: str = MUNI, scope: str = "system/*.write system/*.read") -> str:
        cid = f"connector-{muni}"
        return self.token({"sub": cid, "client_id": cid, "scope": scope, "municipality": muni})

    def user(
        self,
        sub: str,
        scopes: str = "patient/*.rs",
        codes: list[tuple[str, str]] | None = None,
        client_id: str = "app-1",
        grant_scopes: str | None = None,
    ) -> str:
        """A person's token with an active grant; `codes` are (code, relationship)."""
        gid = "g-" + uuid.uuid4().hex[:8]
        self.consent.grants[gid] = Grant(
            gid, "active", sub, client_id, tuple((grant_scopes or scopes).split()), None
        )
        if codes is not None:
            self.consent.links[sub] = [PatientLink(MUNI, c, r) for c, r in codes]
        return self.token(
            {
                "sub": sub,
                "client_id": client_id,
                "scope": scopes,
                "grant_id": gid,
            }
        )

    def ref(self, ref: str, client_id: str = "app-1") -> str:
        """`Type/id` as the app `client_id` (its own sector, as `user()` makes) names it."""
        return sector_ids(client_id).ref_out(ref)

    def path(self, ref: str, client_id: str = "app-1") -> str:
        return "/" + self.ref(ref, client_id)

    def get(self, path: str, token: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def post(self, token: str, body: Any, path: str = "/"):  # type: ignore[no-untyped-def]
        return self.client.post(
            path,
            data=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )


def sector_key(client_id: str) -> bytes:
    """The sector key the IdP stand-in gives app `client_id` (each app its own sector)."""
    return derive_sector_key(b"test-pairwise-key", "sector-of-" + client_id)


def sector_ids(client_id: str = "app-1") -> SectorIds:
    return for_key(sector_key(client_id))


@pytest.fixture
def world(app_factory: Callable[[str], Flask], migrated: Settings, issuer: Issuer) -> World:
    app = app_factory("fhir")
    consent = InMemoryConsentDirectory()
    app.extensions["phr_consent"] = consent
    return World(app, migrated, issuer, consent)


# --- content ---------------------------------------------------------------------------------

LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def patient(urn: str, code: str, muni: str = MUNI, **extra: Any) -> dict[str, Any]:
    return {
        "fullUrl": urn,
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": pseudonym_system(muni), "value": code}],
            "gender": "female",
            "birthDate": "2020-04-01",
            **extra,
        },
        "request": {"method": "PUT", "url": f"Patient?identifier={pseudonym_system(muni)}|{code}"},
    }


def observation(
    urn: str,
    subject: str,
    key: str,
    *,
    code: str = "29463-7",
    value: Any = 12.5,
    date: str = "2024-05-01",
    category: str = "vital-signs",
    muni: str = MUNI,
    **extra: Any,
) -> dict[str, Any]:
    system = source_record_system(muni, "mch")
    return {
        "fullUrl": urn,
        "resource": {
            "resourceType": "Observation",
            "identifier": [{"system": system, "value": key}],
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": subject},
            "effectiveDateTime": date,
            "valueQuantity": {
                "value": value,
                "unit": "kg",
                "system": "http://unitsofmeasure.org",
                "code": "kg",
            },
            **extra,
        },
        "request": {"method": "PUT", "url": f"Observation?identifier={system}|{key}"},
    }


def immunization(urn: str, subject: str, key: str, date: str = "2024-06-01") -> dict[str, Any]:
    system = source_record_system(MUNI, "vaccination")
    return {
        "fullUrl": urn,
        "resource": {
            "resourceType": "Immunization",
            "identifier": [{"system": system, "value": key}],
            "status": "completed",
            "vaccineCode": {
                "coding": [
                    {
                        "system": "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code",
                        "code": "631340QE1020",
                    }
                ]
            },
            "patient": {"reference": subject},
            "occurrenceDateTime": date,
        },
        "request": {"method": "PUT", "url": f"Immunization?identifier={system}|{key}"},
    }


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def family_bundle() -> dict[str, Any]:
    """Parent P1 with two weights, child C1 with a weight and a vaccination, stranger S1."""
    return transaction(
        patient("urn:uuid:p1", "P1", gender="female", birthDate="1990-01-01"),
        patient("urn:uuid:c1", "C1", gender="male"),
        patient("urn:uuid:s1", "S1"),
        observation("urn:uuid:o1", "urn:uuid:p1", "w-p1-1", value=55.0, date="2024-01-10"),
        observation("urn:uuid:o2", "urn:uuid:p1", "w-p1-2", value=54.5, date="2024-03-10"),
        observation("urn:uuid:o3", "urn:uuid:c1", "w-c1-1", value=12.5, date="2024-05-01"),
        observation(
            "urn:uuid:o4",
            "urn:uuid:c1",
            "lab-c1-1",
            code="2339-0",
            category="laboratory",
            value=90,
            date="2024-05-02",
        ),
        immunization("urn:uuid:i1", "urn:uuid:c1", "v-c1-1"),
        observation("urn:uuid:o5", "urn:uuid:s1", "w-s1-1", value=70.0, date="2024-02-01"),
    )


def ids_by_identifier(resp_json: dict[str, Any], bundle: dict[str, Any]) -> dict[str, str]:
    """fullUrl of each entry → 'Type/id' the server gave it."""
    out = {}
    for e, r in zip(bundle["entry"], resp_json["entry"], strict=True):
        out[e["fullUrl"]] = r["response"]["location"].rsplit("/_history", 1)[0]
    return out


@pytest.fixture
def family(world: World) -> dict[str, str]:
    bundle = family_bundle()
    resp = world.post(world.connector(), bundle)
    assert resp.status_code == 200, resp.get_json()
    return ids_by_identifier(resp.get_json(), bundle)


def access_shapes(family: dict[str, str]) -> dict[str, Access]:
    """Requests of every shape the policy knows (without granular scopes), for the
    resources of `family`."""
    p1, c1 = (family[f"urn:uuid:{k}"].split("/")[1] for k in ("p1", "c1"))

    def person(scopes: str, patients: frozenset[str], **kw: Any) -> Access:
        token = AccessToken("sub", "app", frozenset(scopes.split()), 2**31, grant_id="g", **kw)
        return Access(token, "raw", [s for s in map(parse_scope, token.scopes) if s], patients)

    def system(muni: str) -> Access:
        token = AccessToken("c", "c", frozenset({"system/*.read"}), 2**31, municipality=muni)
        return Access(token, "raw", [parse_scope("system/*.read")])  # type: ignore[list-item]

    return {
        "parent": person("patient/*.rs", frozenset({p1, c1})),
        "child": person("patient/*.rs", frozenset({c1})),
        "nobody": person("patient/*.rs", frozenset()),
        "observations only": person("patient/Observation.rs", frozenset({p1, c1})),
        "search only": person("patient/*.s", frozenset({p1, c1})),
        "user scopes": person("user/*.rs", frozenset({p1})),
        "the city": system(MUNI),
        "another city": system("072010"),
    }


@contextmanager
def stand_in(world: World) -> Iterator[str]:
    """The IdP's JWKS and token endpoint and the consent API, over HTTP, from `world`."""
    consent = world.consent
    app = Flask("idp_and_consent_stand_in")

    @app.get("/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return jsonify(world.issuer.jwks())

    @app.post("/token")
    def token():  # type: ignore[no-untyped-def]
        return jsonify(access_token="service-token", token_type="Bearer", expires_in=3600)

    @app.get("/api/v1/grants/<gid>")
    def grant(gid: str):  # type: ignore[no-untyped-def]
        g = consent.grants[gid]
        return jsonify(
            id=g.id, status=g.status, subject=g.subject, client_id=g.client_id, scopes=g.scopes
        )

    @app.get("/api/v1/subjects/<sub>/patients")
    def patients(sub: str):  # type: ignore[no-untyped-def]
        links = consent.links.get(sub, [])
        return jsonify(patients=[{"municipality": p.municipality, "code": p.code} for p in links])

    with live_server(app) as url:
        yield url
