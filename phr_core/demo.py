"""Demo data every service agrees on, and the loop that loads each service's share of it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.services import SERVICES


@dataclass(frozen=True)
class DemoMunicipality:
    code: str  # 全国地方公共団体コード, six digits with the check digit
    name_ja: str
    name_en: str


# Synthetic data only: the seed city lends its name and code, the records are invented.
DEMO_MUNICIPALITY = DemoMunicipality("072028", "会津若松市（デモ）", "Aizuwakamatsu (demo)")


def load_all(settings: Settings) -> dict[str, int]:
    """Load every service's demo data (idempotent) and say how many records each added."""
    added: dict[str, int] = {}
    for service in SERVICES:
        module = importlib.import_module(f"{service.package}.demo")
        db = Database(settings.database_urls[service.name])
        try:
            added[service.name] = module.load(db, settings)
        finally:
            db.dispose()
    return added
