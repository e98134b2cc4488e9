"""Demo data for the consent service: the demo city as a participating municipality, and the
demo family (phr_core.demo_data.DEMO_FAMILY): development sign-in citizen 1 linked to the city, as a
guardian of one child, with the city's consent for both.

The demo parent's subject comes from the IdP: the launcher (launcher/demo.py) asks it and
passes it in, as services do not import each other."""

from __future__ import annotations

from sqlalchemy import select

from consent import records
from consent.linkage import guardianship_end
from consent.models import Guardianship, Municipality, PatientLink
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_FAMILY, DEMO_MUNICIPALITIES, DEMO_MUNICIPALITY, MOVED_FAMILY

DEMO_CATEGORIES = ["mch", "vaccination", "checkup", "claims"]


def load(db: Database, settings: Settings) -> int:
    """Register the demo municipality once; running it twice adds nothing."""
    return _municipality(db, DEMO_MUNICIPALITY.code)


def load_city(db: Database, city: Settings) -> int:
    """The second demo city (`city`: its connector's settings) as a participating
    municipality, once."""
    return _municipality(db, city.option("PHR_CONNECTOR_MUNICIPALITY"))


def _municipality(db: Database, code: str) -> int:
    m = DEMO_MUNICIPALITIES[code]
    with db.session() as s:
        if s.get(Municipality, m.code) is not None:
            return 0
        s.add(Municipality(code=m.code, name_ja=m.name_ja, name_en=m.name_en))
    return 1


def load_family(db: Database, *, parent_subject: str) -> int:
    """Link the demo parent (`parent_subject`: their PHR-sector subject), their child and the
    city's consent for both, once."""
    f = DEMO_FAMILY
    return _link(db, parent_subject, DEMO_MUNICIPALITY.code, f.parent_code, f.child_code)


def load_moved_family(db: Database, city: Settings, *, parent_subject: str) -> int:
    """The demo family after moving to the second city: linked there too, under that city's
    codes, with that city's consent for parent and child (the first city's links stay: their
    older records are still there), once."""
    code = city.option("PHR_CONNECTOR_MUNICIPALITY")
    return _link(db, parent_subject, code, MOVED_FAMILY.parent_code, MOVED_FAMILY.child_code)


def _link(db: Database, subject: str, code: str, parent_code: str, child_code: str) -> int:
    m = DEMO_MUNICIPALITIES[code]
    f = DEMO_FAMILY
    with db.session() as s:
        known = s.scalar(
            select(PatientLink).where(
                PatientLink.subject == subject, PatientLink.municipality == m.code
            )
        )
        if known is not None:
            return 0
        s.add(PatientLink(subject=subject, municipality=m.code, code=parent_code))
        s.add(
            Guardianship(
                guardian=subject,
                municipality=m.code,
                child_code=child_code,
                relationship="mother",
                ends_on=guardianship_end(f.child_birth()),
            )
        )
        for patient in (None, (m.code, child_code)):
            records.create(
                s,
                kind=records.PROVIDER,
                subject=subject,
                actor=m.code,
                actor_name=m.name_ja,
                categories=DEMO_CATEGORIES,
                purpose="デモ：市の母子保健・予防接種・健診・レセプトの記録を PHR 基盤に提供する",
                recorded_by="demo",
                patient=patient,
            )
        records.touch(s, [records.patients_key(subject)])
    return 1
