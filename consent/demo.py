"""Demo data for the consent service: the demo city as a participating municipality."""

from __future__ import annotations

from consent.models import Municipality
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo import DEMO_MUNICIPALITY


def load(db: Database, settings: Settings) -> int:
    """Register the demo municipality once; running it twice adds nothing."""
    m = DEMO_MUNICIPALITY
    with db.session() as s:
        if s.get(Municipality, m.code) is not None:
            return 0
        s.add(Municipality(code=m.code, name_ja=m.name_ja, name_en=m.name_en))
    return 1
