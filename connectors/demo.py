"""Demo data for the connector: none yet; its runs come from the demo city's export files."""

from __future__ import annotations

from phr_core.config import Settings
from phr_core.db import Database


def load(db: Database, settings: Settings) -> int:
    return 0
