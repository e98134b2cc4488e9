"""The loop that loads each service's share of the demo data (facts: phr_core/demo_data.py)."""

from __future__ import annotations

import importlib

from phr_core.config import Settings
from phr_core.db import Database
from phr_core.services import SERVICES


def load_all(settings: Settings, *, family: bool = False) -> dict[str, int]:
    """Load every service's demo data (idempotent) and say how many records each added.
    `family` adds the demo family (DEMO_FAMILY: links and records) where a service has a share
    of it (`load_family`): `phr dev run` and `phr dev demo` do, tests ask for it when needed."""
    added: dict[str, int] = {}
    for service in SERVICES:
        module = importlib.import_module(f"{service.package}.demo")
        db = Database(settings.database_urls[service.name])
        try:
            added[service.name] = module.load(db, settings)
            if family and hasattr(module, "load_family"):
                added[service.name] += module.load_family(db, settings)
        finally:
            db.dispose()
    return added
