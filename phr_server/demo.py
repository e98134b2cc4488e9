"""Demo data for the PHR server: each demo city it serves (PHR_FHIR_MUNICIPALITIES) as a FHIR
Organization (JP Core profile), and the demo family's records of those cities."""

from __future__ import annotations

from fhir.resources.R4B.organization import Organization

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import (
    DEMO_MUNICIPALITIES,
    DEMO_MUNICIPALITY,
    SECOND_MUNICIPALITY,
    DemoMunicipality,
)
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM
from phr_server import demo_family, personal_data
from phr_server.models import StoredResource
from phr_server.repository import Repository
from phr_server.storage import Keyring
from phr_server.tenants import served
from phr_server.validation import Invalid, validate

JP_ORGANIZATION = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Organization"


def demo_organization(m: DemoMunicipality = DEMO_MUNICIPALITY) -> dict:
    """A demo municipality as data provider, checked against the FHIR model."""
    org = Organization.model_validate(
        {
            "resourceType": "Organization",
            "id": f"municipality-{m.code}",
            "meta": {"profile": [JP_ORGANIZATION]},
            "identifier": [{"system": MUNICIPALITY_CODE_SYSTEM, "value": m.code}],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "govt",
                            "display": "Government",
                        }
                    ]
                }
            ],
            "name": m.name_ja,
            "alias": [m.name_en],
        }
    )
    return org.model_dump(mode="json", exclude_none=True)


def load(db: Database, settings: Settings) -> int:
    """Store each served demo city's Organization once (sealed under the city's data key);
    running it twice adds nothing."""
    return sum(
        _store(db, settings, [demo_organization(DEMO_MUNICIPALITIES[code])], code)
        for code in served(settings)
        if code in DEMO_MUNICIPALITIES
    )


def load_family(db: Database, settings: Settings) -> int:
    """The demo family's records of the cities this server serves, once: from before the move
    in the first city (phr_server.demo_family), from after it in the second."""
    added = 0
    if DEMO_MUNICIPALITY.code in served(settings):
        added += _store(db, settings, demo_family.resources(), DEMO_MUNICIPALITY.code)
    if SECOND_MUNICIPALITY.code in served(settings):
        moved = demo_family.moved_resources()
        added += _store(db, settings, moved, SECOND_MUNICIPALITY.code)
    return added


def _store(db: Database, settings: Settings, wanted: list[dict], municipality: str) -> int:
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    added = 0
    with db.session() as s:
        for resource in wanted:
            if s.get(StoredResource, (resource["resourceType"], resource["id"])) is not None:
                continue
            validate(resource)
            if refused := personal_data.problems(resource, resource["resourceType"]):
                raise Invalid(refused)  # the demo holds no personal data either
            repo.put(s, resource, municipality, None)
            added += 1
    return added
