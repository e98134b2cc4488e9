"""A family that moved, on loopback: the live platform (IdP, consent service and portal, city
A's PHR server with the demo family) plus a second PHR server for city B on its own database
and port, both vouched for in an in-process test federation whose directory the IdP and the
portal use. City B's connector (a static client of the IdP) loads the family's newer records
into B's server through the IdP and B's transaction endpoint, as in production."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from werkzeug.serving import make_server

from consent import records
from consent.linkage import guardianship_end
from consent.models import Guardianship, Municipality, PatientLink
from federation.directory import Directory, home_server
from phr_core import migrations
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_FAMILY, DEMO_MUNICIPALITY
from phr_core.identifiers import patient_id, pseudonym_system, source_record_system
from phr_core.services import get_service
from tests.conftest import free_port
from tests.federation.conftest import Federation
from tests.portal.live_platform import TIMEOUT, Platform

CITY_A = DEMO_MUNICIPALITY.code
CITY_B = "072010"  # 福島市: synthetic records only
CITY_B_JA, CITY_B_EN = "福島市（デモ）", "Fukushima (demo)"
PARENT_B, CHILD_B = "moved-parent-b", "moved-child-b"
PARENT_B_ID, CHILD_B_ID = patient_id(CITY_B, PARENT_B), patient_id(CITY_B, CHILD_B)
CONNECTOR_B, CONNECTOR_B_SECRET = f"connector-{CITY_B}", "city-b-connector-secret"
VACCINE_SYSTEM = "urn:phr-platform:code:vaccine"


@dataclass
class TwoCities:
    platform: Platform
    server_b: str  # city B's PHR server (FHIR base URL)
    app_b: Any
    directory: Directory
    settings_b: Settings

    def stop_b(self) -> None:
        """City B's server goes down (its port closes)."""
        self._server_b.shutdown()

    _server_b: Any = None


def server_b_environ(environ: dict[str, str], database_url: str) -> dict[str, str]:
    port = free_port()
    return {
        **environ,
        "PHR_FHIR_PORT": str(port),
        "PHR_FHIR_URL": f"http://127.0.0.1:{port}",
        "PHR_FHIR_DATABASE_URL": database_url,
        "PHR_FHIR_MUNICIPALITIES": CITY_B,
    }


def _phr_server_leaf(fed: Federation, resource: str, cities: list[str]) -> None:
    leaf = fed.leaf("phr", metadata={})
    leaf.metadata = {
        "oauth_resource": {
            "resource": resource,
            "authorization_servers": [fed.settings.issuer],
            "phr_municipalities": cities,
        }
    }
    fed.add_subordinate(
        fed.anchor, leaf.entity_id, leaf.jwks, entity_types=["oauth_resource", "federation_entity"]
    )


def _link_city_b(p: Platform, subject: str) -> None:
    """The demo parent consented for city B too; B matched them and their child."""
    child_birth = DEMO_FAMILY.child_birth()
    with p.apps["consent"].extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        s.add(Municipality(code=CITY_B, name_ja=CITY_B_JA, name_en=CITY_B_EN))
        s.flush()
        s.add(PatientLink(subject=subject, municipality=CITY_B, code=PARENT_B))
        s.add(
            Guardianship(
                guardian=subject,
                municipality=CITY_B,
                child_code=CHILD_B,
                relationship="mother",
                ends_on=guardianship_end(child_birth),
            )
        )
        for patient in (None, (CITY_B, CHILD_B)):
            records.create(
                s,
                kind=records.PROVIDER,
                subject=subject,
                actor=CITY_B,
                actor_name=CITY_B_JA,
                categories=["mch", "vaccination", "checkup"],
                purpose="テスト：転入先の市の記録",
                recorded_by="test",
                patient=patient,
            )
        records.touch(s, [records.patients_key(subject)])


def _register_connector_b(p: Platform) -> None:
    from idp.clients import upsert_static
    from idp.subjects import PHR_SECTOR

    meta = {
        "client_id": CONNECTOR_B,
        "client_name": f"市区町村コネクタ {CITY_B}",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": "system/*.cu system/*.write",
        "phr_sector": PHR_SECTOR,
        "phr_municipality": CITY_B,
    }
    with p.apps["idp"].extensions["phr_db"].session() as s:  # type: ignore[attr-defined]
        upsert_static(s, meta, CONNECTOR_B_SECRET)


def city_b_bundle() -> dict[str, Any]:
    """What city B's connector sends after the move: the parent, the child (same birth date
    and sex as in city A) with a weight and a varicella dose given in B."""
    birth = DEMO_FAMILY.child_birth()
    moved = birth + timedelta(days=390)

    def patient(code: str, born: str, sex: str) -> dict[str, Any]:
        system = pseudonym_system(CITY_B)
        return {
            "fullUrl": f"urn:uuid:{code}",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": system, "value": code}],
                "gender": sex,
                "birthDate": born,
            },
            "request": {"method": "PUT", "url": f"Patient?identifier={system}|{code}"},
        }

    obs_system = source_record_system(CITY_B, "mch")
    vac_system = source_record_system(CITY_B, "vaccination")
    weight = {
        "resourceType": "Observation",
        "identifier": [{"system": obs_system, "value": "b-weight-1"}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "体重"}]},
        "subject": {"reference": f"urn:uuid:{CHILD_B}"},
        "effectiveDateTime": moved.isoformat(),
        "valueQuantity": {
            "value": 9.1,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }
    varicella = {
        "resourceType": "Immunization",
        "identifier": [{"system": vac_system, "value": "b-varicella-1"}],
        "status": "completed",
        "vaccineCode": {"coding": [{"system": VACCINE_SYSTEM, "code": "VZV", "display": "水痘"}]},
        "patient": {"reference": f"urn:uuid:{CHILD_B}"},
        "occurrenceDateTime": moved.isoformat(),
        "protocolApplied": [{"doseNumberPositiveInt": 1}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            patient(PARENT_B, DEMO_FAMILY.parent_birth.isoformat(), "female"),
            patient(CHILD_B, birth.isoformat(), DEMO_FAMILY.child_sex),
            {
                "fullUrl": "urn:uuid:w1",
                "resource": weight,
                "request": {
                    "method": "PUT",
                    "url": f"Observation?identifier={obs_system}|b-weight-1",
                },
            },
            {
                "fullUrl": "urn:uuid:v1",
                "resource": varicella,
                "request": {
                    "method": "PUT",
                    "url": f"Immunization?identifier={vac_system}|b-varicella-1",
                },
            },
        ],
    }


def load_city_b(p: Platform, server_b: str) -> None:
    """City B's connector: a token for B's server from the IdP (RFC 8707 resource), then the
    transaction."""
    token = requests.post(
        p.idp + "/token",
        data={"grant_type": "client_credentials", "scope": "system/*.write", "resource": server_b},
        auth=(CONNECTOR_B, CONNECTOR_B_SECRET),
        timeout=TIMEOUT,
    )
    assert token.status_code == 200, token.text
    resp = requests.post(
        server_b + "/",
        data=json.dumps(city_b_bundle()),
        headers={
            "Authorization": "Bearer " + token.json()["access_token"],
            "Content-Type": "application/fhir+json",
        },
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text[:500]


@contextmanager
def second_city(p: Platform, fed: Federation, environ_b: dict[str, str]) -> Iterator[TwoCities]:
    """City B's PHR server running and vouched for, the family linked and loaded there."""
    from launcher.demo import demo_parent_subject
    from phr_server import app as fhir_app_module

    settings_b = load_settings(environ_b)
    migrations.upgrade(get_service("fhir"), settings_b.database_urls["fhir"])
    app_b = fhir_app_module.create_app(settings_b)
    server_b = settings_b.urls["fhir"]
    port = int(server_b.rsplit(":", 1)[1])
    srv = make_server("127.0.0.1", port, app_b, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        _phr_server_leaf(fed, p.fhir, [CITY_A])
        _phr_server_leaf(fed, server_b, [CITY_B])
        found = Directory(home_server(p.fhir), fed.fetcher, fed.resolver())
        for name in ("idp", "consent"):
            p.apps[name].extensions["phr_directory"] = found  # type: ignore[attr-defined]
        _register_connector_b(p)
        _link_city_b(p, demo_parent_subject(p.settings))
        load_city_b(p, server_b)
        two = TwoCities(p, server_b, app_b, found, settings_b)
        two._server_b = srv
        yield two
    finally:
        srv.shutdown()
        thread.join(5)
        app_b.extensions["phr_db"].dispose()


def second_database(db_backend: str, tmp_path: Any) -> Iterator[str]:
    """City B's PHR server's own database, on the backend under test."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'city_b.db'}"
        return
    from tests.conftest import _fresh_postgres, _postgres_servers

    yield from _fresh_postgres(_postgres_servers()[0])


def stored_count(settings_b: Settings) -> int:
    db = Database(settings_b.database_urls["fhir"])
    try:
        from sqlalchemy import func, select

        from phr_server.models import StoredResource

        with db.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(StoredResource)
                    .where(StoredResource.resource_type.in_(["Patient", "Observation"]))
                )
                or 0
            )
    finally:
        db.dispose()
