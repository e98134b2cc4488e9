"""The loop that loads each service's share of the demo data (facts: phr_core/demo_data.py).

Services do not import each other, so what one service's loader needs from another (the demo
parent's subject at the IdP for the consent service's links, the connector's public key for
its client at the IdP) is worked out here and handed to the loader as an argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors import demo as connector_demo
from connectors.client_key import load_signing_key, public_jwk
from consent import demo as consent_demo
from federation import demo as federation_demo
from idp import demo as idp_demo
from idp.endpoints.interaction import demo_person_id
from idp.subjects import PHR_SECTOR, PairwiseSubjects
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_FAMILY
from phr_core.services import SERVICES
from phr_server import demo as fhir_demo

# One service's loader: (its database, the settings, whether to add the demo family) → added.
Loader = Callable[[Database, Settings, bool], int]


def demo_parent_subject(settings: Settings) -> str:
    """The PHR-sector subject the IdP gives the demo parent (development sign-in)."""
    idp_db = Database(settings.database_urls["idp"])
    try:
        with idp_db.session() as s:
            return PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY")).subject(
                s, PHR_SECTOR, demo_person_id(DEMO_FAMILY.parent_citizen)
            )
    finally:
        idp_db.dispose()


def connector_jwk(settings: Settings) -> dict[str, Any]:
    """The public JWK of a city's connector (`settings`: that city's). Development only: the
    IdP learns it from the development secret; a real IdP gets it from the municipality
    (`phr connector jwk`, PHR_IDP_CLIENTS_FILE)."""
    return public_jwk(load_signing_key(settings.secret("PHR_CONNECTOR_SIGNING_KEY")))


def _idp(db: Database, settings: Settings, family: bool) -> int:
    return idp_demo.load(db, settings, connector_jwk=connector_jwk(settings))


def _fhir(db: Database, settings: Settings, family: bool) -> int:
    added = fhir_demo.load(db, settings)
    return added + (fhir_demo.load_family(db, settings) if family else 0)


def _consent(db: Database, settings: Settings, family: bool) -> int:
    added = consent_demo.load(db, settings)
    if family:
        added += consent_demo.load_family(db, parent_subject=demo_parent_subject(settings))
    return added


def _connector(db: Database, settings: Settings, family: bool) -> int:
    return connector_demo.load(db, settings)


def _federation(db: Database, settings: Settings, family: bool) -> int:
    return federation_demo.load(db, settings)


LOADERS: dict[str, Loader] = {
    "idp": _idp,
    "fhir": _fhir,
    "consent": _consent,
    "connector": _connector,
    "federation": _federation,
}


def load_all(settings: Settings, *, family: bool = False) -> dict[str, int]:
    """Load every service's demo data (idempotent) and say how many records each added.
    `family` adds the demo family (DEMO_FAMILY: links and records) where a service has a share
    of it: `phr dev run` and `phr dev demo` do, tests ask for it when needed."""
    added: dict[str, int] = {}
    for service in SERVICES:  # in the table's order: the IdP's subjects before the links
        db = Database(settings.database_urls[service.name])
        try:
            added[service.name] = LOADERS[service.name](db, settings, family)
        finally:
            db.dispose()
    return added


def load_second_city(settings: Settings, second: Settings, *, family: bool) -> dict[str, int]:
    """The second city's share (`second`: its settings) once its schemas are in place: its PHR
    server's data, its clients at the IdP, the anchor vouching for its services, the consent
    service's municipality and (with `family`) the moved family."""
    added: dict[str, int] = {}

    def run(name: str, on: Settings, *steps: Callable[[Database], int]) -> None:
        db = Database(on.database_urls[name])
        try:
            added[name] = sum(step(db) for step in steps)
        finally:
            db.dispose()

    run("fhir", second, lambda db: fhir_demo.load(db, second),
        lambda db: fhir_demo.load_family(db, second) if family else 0)  # fmt: skip
    run("idp", settings, lambda db: idp_demo.load_city(db, second, connector_jwk(second)))
    run("federation", settings, lambda db: federation_demo.load_city(db, settings, second))
    run("consent", settings, lambda db: consent_demo.load_city(db, second),
        lambda db: consent_demo.load_moved_family(
            db, second, parent_subject=demo_parent_subject(second)) if family else 0)  # fmt: skip
    return added
