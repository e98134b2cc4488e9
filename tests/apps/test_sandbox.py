"""The developer sandbox: one demo parent with a card, enrolled, linked to the demo city with
her child, and the child's records in the PHR server; a second run adds nothing."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from consent import linkage
from consent.models import Guardianship, PatientLink
from idp.card.models import CardBinding
from idp.card.vcard import VirtualCard
from phr_core import sandbox
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo import load_all
from phr_core.identifiers import patient_id
from phr_server.models import StoredResource, TokenIndex


def _count(settings: Settings, service: str, model: type, *where: object) -> int:
    db = Database(settings.database_urls[service])
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0
    finally:
        db.dispose()


def test_sandbox_family_is_ready_and_loaded_once(migrated: Settings) -> None:
    load_all(migrated)
    today = date(2026, 11, 26)
    box = sandbox.prepare(migrated, today)
    card = VirtualCard.load(box.card)
    assert card.tries_left("auth") > 0  # a real virtual card file, PIN-protected
    assert (box.folder / sandbox.INFO_FILE).read_text(encoding="utf-8").count(sandbox.AUTH_PIN)
    assert (today - box.child_birth).days == sandbox.CHILD_AGE_DAYS

    # Enrolled at the IdP (both certificates) and linked with her child at the consent service.
    assert _count(migrated, "idp", CardBinding, CardBinding.person_id == box.person_id) == 2
    db = Database(migrated.database_urls["consent"])
    try:
        with db.session() as s:
            link = s.scalars(select(PatientLink)).one()
            guardian = s.scalars(select(Guardianship)).one()
            patients = linkage.patients(s, link.subject)
    finally:
        db.dispose()
    assert guardian.guardian == link.subject and guardian.relationship == "mother"
    assert {rel for _, _, rel, _ in patients} == {"self", "child"}

    # The child's records: the Patient under the derived id the IdP will name, vaccinations
    # given up to today, and checkup measurements.
    child = patient_id(guardian.municipality, guardian.child_code)
    assert _count(migrated, "fhir", StoredResource, StoredResource.id == child) == 1
    shots = _count(migrated, "fhir", StoredResource, StoredResource.resource_type == "Immunization")
    assert shots == 13  # the infant series (HepB, rotavirus, DPT-IPV-Hib, PCV ×3; BCG)
    observations = _count(
        migrated, "fhir", StoredResource, StoredResource.resource_type == "Observation"
    )
    body = _count(
        migrated,
        "fhir",
        TokenIndex,
        TokenIndex.resource_type == "Observation",
        TokenIndex.param == "category",
        TokenIndex.code == "body-measurement",
    )
    # Measurements for the example's growth table, and other findings (Apgar, judgements)
    # that its granular scope keeps out.
    assert 0 < body < observations

    # Again: nothing new anywhere.
    before = _count(migrated, "fhir", StoredResource)
    again = sandbox.prepare(migrated, today)
    assert again.card == box.card and again.child_birth == box.child_birth
    assert _count(migrated, "fhir", StoredResource) == before
    assert _count(migrated, "consent", PatientLink) == 1
    assert _count(migrated, "idp", CardBinding) == 2
