"""Demo data for the PHR server: the demo city as a FHIR Organization (JP Core profile)."""

from __future__ import annotations

from fhir.resources.R4B.organization import Organization

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo import DEMO_MUNICIPALITY
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM
from phr_server.models import StoredResource
from phr_server.repository import Repository
from phr_server.storage import Keyring
from phr_server.validation import validate

JP_ORGANIZATION = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Organization"


def demo_organization() -> dict:
    """The demo municipality as data provider, checked against the FHIR model."""
    m = DEMO_MUNICIPALITY
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
    """Store the demo Organization once (sealed under the city's data key); running it twice
    adds nothing."""
    return _store(db, settings, [demo_organization()])


def load_family(db: Database, settings: Settings) -> int:
    """The demo family's records (phr_server.demo_family), once."""
    from phr_server.demo_family import resources

    return _store(db, settings, resources())


def _store(db: Database, settings: Settings, wanted: list[dict]) -> int:
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    added = 0
    with db.session() as s:
        for resource in wanted:
            if s.get(StoredResource, (resource["resourceType"], resource["id"])) is not None:
                continue
            validate(resource)
            repo.put(s, resource, DEMO_MUNICIPALITY.code, None)
            added += 1
    return added
