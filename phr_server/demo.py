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
    resource = demo_organization()
    validate(resource)
    repo = Repository(Keyring(settings.secret("PHR_FHIR_DATA_KEY")), b"")
    with db.session() as s:
        if s.get(StoredResource, ("Organization", resource["id"])) is not None:
            return 0
        repo.put(s, resource, DEMO_MUNICIPALITY.code, None)
    return 1
