"""The developer sandbox: one demo parent with a card, enrolled, linked to the demo city with
her child, and the child's records in the PHR server; a second run adds nothing."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from consent import linkage
from consent.models import Guardianship, PatientLink
from idp.card.models import CardBinding
from idp.card.vcard import VirtualCard
from launcher import sandbox
from launcher.demo import load_all
from phr_core.config import Settings
from phr_core.db import Database
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
    assert box.card == box.folder / "parent-card.json"
    for citizen in sandbox.CITIZENS:
        card = VirtualCard.load(box.card_of(citizen.key))
        assert card.tries_left("auth") > 0  # a real virtual card file, PIN-protected
    info = (box.folder / sandbox.INFO_FILE).read_text(encoding="utf-8")
    assert sandbox.AUTH_PIN in info and str(box.card) in info
    assert (today - box.child_birth).days == sandbox.CHILD_AGE_DAYS

    # Both parents enrolled at the IdP (both certificates each), linked at the consent service
    # under their own subjects, each a guardian of the one child.
    for key, person in box.person_ids.items():
        assert _count(migrated, "idp", CardBinding, CardBinding.person_id == person) == 2, key
    db = Database(migrated.database_urls["consent"])
    try:
        with db.session() as s:
            links = s.scalars(select(PatientLink)).all()
            guardians = s.scalars(select(Guardianship)).all()
            patients = linkage.patients(s, links[0].subject)
    finally:
        db.dispose()
    assert len({g.guardian for g in guardians}) == 2 == len(links)
    assert {g.guardian for g in guardians} == {link.subject for link in links}
    assert {g.relationship for g in guardians} == {"mother", "father"}
    assert len({g.child_code for g in guardians}) == 1
    assert {rel for _, _, rel, _ in patients} == {"self", "child"}
    guardian = guardians[0]

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
    assert again == box
    assert _count(migrated, "fhir", StoredResource) == before
    assert _count(migrated, "consent", PatientLink) == 2
    assert _count(migrated, "idp", CardBinding) == 4
