"""Identity federation end to end: a second, city-run OpenID provider (our IdP code with another
issuer, its own database, keys, pairwise key and access-token secret: nothing shared with the
home IdP or the PHR server) is registered with the trust anchor. A citizen signs in there, the
city links them, an app gets a token from that IdP sealed to the PHR server's own key, the
consent service holds the grant and the link under `<issuer>#<sub>`, and the PHR server serves
that person's records until the grant is revoked. An IdP outside the federation is refused.

The home platform (IdP, consent service and portal, PHR server) runs on loopback on the test
database; the anchor and the city IdP answer through the in-process federation fetcher."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import requests
from flask import Flask

from consent import auth as consent_auth
from consent import linkage
from consent.models import LinkRequest
from federation import demo as federation_demo
from idp.app import create_app as create_idp
from idp.app import prepare
from idp.clients import upsert_static
from idp.endpoints.interaction import demo_person_id
from idp.subjects import PHR_SECTOR
from phr_core import migrations, sealing
from phr_core.config import Settings, load_settings
from phr_core.demo_data import DEMO_FAMILY, DEMO_MUNICIPALITY
from phr_core.identifiers import patient_id, pseudonym_system
from phr_core.pairwise_ids import CLAIM, decode_key, for_key
from phr_core.services import SERVICES, get_service
from phr_core.tokens import InvalidToken, access_token_cipher, b64url_json, unseal
from phr_server.repository import Repository
from phr_server.storage import Keyring
from tests.conftest import free_port
from tests.federation.conftest import Federation
from tests.federation.test_federated_resource import register_idp
from tests.idp.conftest import Browser, code_request, pkce_pair
from tests.portal.live_platform import Platform, running
from tests.revocation import first_refusal

CITY = DEMO_MUNICIPALITY.code
CHILD = patient_id(CITY, DEMO_FAMILY.child_code)
PARENT = patient_id(CITY, DEMO_FAMILY.parent_code)
STRANGER = patient_id(CITY, "stranger-0001")
APP_REDIRECT = "https://city-app.example.jp/cb"
CITIZEN = 2  # the development sign-in number at the city IdP


def _store_stranger(platform: Platform) -> None:
    """Another person's record at the PHR server, which the city IdP's citizen must not reach."""
    settings = platform.settings
    db = platform.apps["fhir"].extensions["phr_db"]  # type: ignore[attr-defined]
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    with db.session() as s:
        patient = {
            "resourceType": "Patient",
            "id": STRANGER,
            "identifier": [{"system": pseudonym_system(CITY), "value": "stranger-0001"}],
            "gender": "male",
            "birthDate": "1980-01-01",
        }
        repo.put(s, patient, CITY, None)


@contextmanager
def platform_running(federation: Federation, settings: Settings) -> Iterator[Platform]:
    """The home platform on loopback, its services vouched for by the anchor and resolving
    chains through the in-process federation."""
    for service in SERVICES:
        migrations.upgrade(service, settings.database_urls[service.name])
    with running(settings) as p:
        # The anchor vouches for the platform's services, as `phr dev run` has it.
        federation_demo.load(federation.anchor.extensions["phr_db"], settings)
        for name in ("idp", "fhir", "consent"):
            federation.fetcher.mount(settings.urls[name], p.apps[name])  # type: ignore[arg-type]
        resolver = federation.resolver()
        p.apps["fhir"].extensions["phr_verifier"].resolver = lambda: resolver  # type: ignore[attr-defined]
        consent_app: Flask = p.apps["consent"]  # type: ignore[assignment]
        consent_app.extensions["portal_federation_resolver"] = resolver
        with consent_app.app_context():
            consent_auth.verifier().resolver = lambda: resolver
        _store_stranger(p)
        yield p


@pytest.fixture
def platform(federation: Federation) -> Iterator[Platform]:
    with platform_running(federation, federation.settings) as p:
        yield p


def city_idp(federation: Federation, tmp_path: Path, name: str) -> Flask:
    """Our IdP with another issuer, its own var folder (so every secret is its own), database
    and grant store at the platform's consent service."""
    issuer = f"http://127.0.0.1:{free_port()}"
    env = {
        **federation.settings.environ,
        "PHR_VAR_DIR": str(tmp_path / f"{name}-var"),
        "PHR_ISSUER": issuer,
        "PHR_IDP_DATABASE_URL": f"sqlite:///{tmp_path / (name + '.db')}",
        "PHR_IDP_GRANT_STORE": "consent",
    }
    settings = load_settings(env)
    migrations.upgrade(get_service("idp"), settings.database_urls["idp"])
    prepare(settings)
    app = create_idp(settings)
    app.config["TESTING"] = True
    app.extensions["idp_federation_resolver"] = federation.resolver()
    federation.apps.append(app)
    federation.fetcher.mount(issuer, app)
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "city-app",
                "client_name": "City child-health app",
                "redirect_uris": [APP_REDIRECT],
                "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "none",
                "scope": "openid launch/patient patient/Immunization.rs patient/Patient.rs",
            },
            None,
        )
    return app


def _phr_subject(idp_app: Flask, person: int) -> str:
    """The person's PHR-sector subject at that IdP (what it tells the consent service)."""
    ctx = idp_app.extensions["idp"]
    with ctx.db.session() as s:
        return ctx.subjects.subject(s, PHR_SECTOR, demo_person_id(person))


def _link_at_city(platform: Platform, idp_app: Flask, subject: str) -> str:
    """The citizen consents for the city through the city IdP (the card-verified attributes go
    into an encrypted link request), and the city's register matches them: the parent's code
    and the child."""
    ctx = idp_app.extensions["idp"]
    path = f"/api/v1/subjects/{urllib.parse.quote(subject, safe='')}/municipalities/{CITY}/consent"
    with idp_app.app_context():
        out = ctx.grants._call(
            ctx,
            "POST",
            path,
            {
                "categories": ["vaccination", "checkup"],
                "attributes": {
                    "name": "会津 花子",
                    "birthdate": "1992-05-10",
                    "sex": "2",
                    "address": "福島県会津若松市東栄町3-46",
                },
            },
        )
    assert out["linked"] is False and out["link_request"]
    consent_app: Flask = platform.apps["consent"]  # type: ignore[assignment]
    with consent_app.extensions["phr_db"].session() as s:
        request = s.get(LinkRequest, out["link_request"])
        assert request is not None
        namespaced = request.subject
        child = linkage.Child(DEMO_FAMILY.child_code, DEMO_FAMILY.child_birth(), "mother")
        linkage.answer(
            s,
            municipality=CITY,
            request_id=request.id,
            code=DEMO_FAMILY.parent_code,
            children=[child],
            recorded_by=f"connector-{CITY}",
            today=date.today(),
        )
    return namespaced


def _app_token(idp_app: Flask, patient: str) -> dict:
    verifier, challenge = pkce_pair()
    client = {"client_id": "city-app", "redirect_uris": [APP_REDIRECT]}
    browser = Browser(idp_app.test_client(), person=CITIZEN, patient=patient)
    params = code_request(
        client, challenge, scope="openid launch/patient patient/Immunization.rs patient/Patient.rs"
    )
    back = browser.authorize(**params)
    assert "code" in back, back
    resp = idp_app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "city-app",
            "code": back["code"][0],
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_a_citizen_of_the_city_idp_reads_their_records_until_the_grant_is_revoked(
    federation: Federation, platform: Platform, tmp_path: Path
) -> None:
    settings = platform.settings
    city = city_idp(federation, tmp_path, "city-idp")
    issuer = register_idp(federation, city)
    subject = _phr_subject(city, CITIZEN)
    city_settings = city.extensions["idp"].settings
    for shared_before in ("PHR_ACCESS_TOKEN_KEY", "PHR_PAIRWISE_KEY"):  # nothing shared
        assert city_settings.secret(shared_before) != settings.secret(shared_before)

    # Linked to the city through the city IdP: the consent service keys it <issuer>#<sub>.
    namespaced = _link_at_city(platform, city, subject)
    assert namespaced == f"{issuer}#{subject}"
    consent_app: Flask = platform.apps["consent"]  # type: ignore[assignment]
    with consent_app.extensions["phr_db"].session() as s:
        links = linkage.patients(s, namespaced)
        assert {(c, code, rel) for c, code, rel, _ in links} == {
            (CITY, DEMO_FAMILY.parent_code, "self"),
            (CITY, DEMO_FAMILY.child_code, "child"),
        }
        # The city IdP's own (un-namespaced) subject reaches nothing: no IdP can speak for
        # people signed in elsewhere, and the same person at the home IdP is another subject.
        assert linkage.patients(s, subject) == []

    # An app signs the citizen in at the city IdP and is given the child's record.
    tokens = _app_token(city, CHILD)
    mine = tokens["patient"]  # the app's own (pairwise) id of the child's record
    assert mine != CHILD
    access = tokens["access_token"]
    header = b64url_json(access.split(".")[0])
    assert header["alg"] == sealing.ALG  # sealed to the PHR server's own key
    fhir_key = sealing.own_key(settings, "FHIR")
    assert header["kid"] == fhir_key.kid
    # Neither the app nor the home IdP's shared secret opens it; the PHR server's key does.
    with pytest.raises(InvalidToken):
        unseal(access, access_token_cipher(settings.secret("PHR_ACCESS_TOKEN_KEY")))
    inner = json.loads(base64.urlsafe_b64decode(unseal(access, fhir_key).split(".")[1] + "=="))
    assert inner["iss"] == issuer and inner["sub"] == subject
    grant_id = inner["grant_id"]
    # The city IdP names the real record to the PHR server, and the key of the app's sector.
    ids = for_key(decode_key(inner[CLAIM]) or b"")
    assert inner["patient"] == CHILD and ids.into("Patient", mine) == CHILD

    # The consent service holds the grant under the namespaced subject.
    with consent_app.app_context():
        from consent.api.grants import grant_status

        grant = grant_status(grant_id)
    assert grant is not None and grant["status"] == "active"
    assert grant["subject"] == namespaced and grant["client_id"] == "city-app"

    fhir = settings.urls["fhir"]
    bearer = {"Authorization": "Bearer " + access}
    found = requests.get(
        f"{fhir}/Immunization", params={"patient": mine}, headers=bearer, timeout=10
    )
    assert found.status_code == 200, found.text
    entries = [e["resource"] for e in found.json().get("entry", [])]
    assert entries and {r["resourceType"] for r in entries} == {"Immunization"}
    assert {r["patient"]["reference"] for r in entries} == {f"Patient/{mine}"}
    assert requests.get(f"{fhir}/Patient/{mine}", headers=bearer, timeout=10).status_code == 200
    for other in (PARENT, STRANGER):  # outside the token's patient: 404, as if not there
        theirs = ids.out("Patient", other)  # even named by the app's own kind of id
        resp = requests.get(f"{fhir}/Patient/{theirs}", headers=bearer, timeout=10)
        assert resp.status_code == 404, (other, resp.text)

    # The citizen revokes the grant (through the city IdP's service client); the very next
    # requests are refused once the PHR server's consent cache (≤ 5 s) lets go.
    ctx = city.extensions["idp"]
    with city.app_context():
        revoked = ctx.grants._call(ctx, "POST", f"/api/v1/grants/{grant_id}/revoke", {})
    assert revoked["status"] == "revoked"
    refused = first_refusal(
        lambda: requests.get(f"{fhir}/Patient/{mine}", headers=bearer, timeout=10)
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_the_city_idp_sees_only_its_own_people_at_the_consent_service(
    federation: Federation, platform: Platform, tmp_path: Path
) -> None:
    city = city_idp(federation, tmp_path, "city-idp")
    register_idp(federation, city)
    ctx = city.extensions["idp"]
    # A grant of the home IdP's demo parent: the city IdP cannot read or revoke it.
    home = platform.apps["idp"].extensions["idp"]  # type: ignore[attr-defined]
    with home.db.session() as s:
        home_subject = home.subjects.subject(
            s, PHR_SECTOR, demo_person_id(DEMO_FAMILY.parent_citizen)
        )
    consent_app: Flask = platform.apps["consent"]  # type: ignore[assignment]
    from consent import records

    with consent_app.extensions["phr_db"].session() as s:
        view = records.create(
            s,
            kind=records.RECIPIENT,
            subject=home_subject,
            actor="some-app",
            actor_name="",
            categories=["vaccination"],
            scopes=["patient/Immunization.rs"],
            purpose="",
            period_end=None,
            recorded_by="phr-idp",
            collection_method="idp-consent-screen",
            language="ja",
        )
        home_grant = view.id
    with city.app_context():
        assert ctx.grants._call(ctx, "GET", f"/api/v1/grants/{home_grant}") == {"status": "unknown"}
        assert ctx.grants._call(ctx, "POST", f"/api/v1/grants/{home_grant}/revoke", {}) == {
            "status": "unknown"
        }
        # Asking for the home subject's links gives those of `<city issuer>#<that string>`.
        quoted = urllib.parse.quote(home_subject, safe="")
        assert ctx.grants._call(ctx, "GET", f"/api/v1/subjects/{quoted}/patients")["patients"] == []
        # Connector routes stay for the home IdP's clients.
        with pytest.raises(Exception, match="403"):
            ctx.grants._call(ctx, "GET", f"/api/v1/municipalities/{CITY}/link-requests")
    with consent_app.extensions["phr_db"].session() as s:
        assert records.get(s, home_grant).version.status == records.ACTIVE


def test_a_token_from_an_idp_outside_the_federation_is_refused(
    federation: Federation, platform: Platform, tmp_path: Path
) -> None:
    rogue = city_idp(federation, tmp_path, "rogue-idp")  # nobody vouches for it
    from idp.clients import ClientView
    from idp.models import Client, Person
    from idp.tokens import access_token

    with rogue.app_context(), rogue.extensions["phr_db"].session() as s:
        if s.get(Person, demo_person_id(CITIZEN)) is None:
            s.add(Person(id=demo_person_id(CITIZEN)))
            s.flush()
        client = ClientView.of(s.get(Client, "city-app"))
        token, _ = access_token(
            rogue.extensions["idp"],
            s,
            client,
            audience=platform.settings.urls["fhir"],
            scope="patient/Immunization.rs",
            person_id=demo_person_id(CITIZEN),
            grant_id="made-up",
        )
    # It can find the PHR server's public key (the federation publishes it) but not be trusted.
    assert b64url_json(token.split(".")[0])["alg"] == sealing.ALG
    resp = requests.get(
        f"{platform.settings.urls['fhir']}/Immunization",
        headers={"Authorization": "Bearer " + token},
        timeout=10,
    )
    assert resp.status_code == 401
    assert "outside the federation" in resp.headers.get("WWW-Authenticate", "") + resp.text
