"""Identifier systems every service agrees on. A person appears in FHIR only as a
municipality's pseudonymous code; a record only by its source city and source record key."""

from __future__ import annotations

# 全国地方公共団体コード of a municipality (Organization.identifier).
MUNICIPALITY_CODE_SYSTEM = "urn:phr-platform:municipality-code"


def pseudonym_system(municipality_code: str) -> str:
    """Patient.identifier system for one city's keyed pseudonymous codes."""
    return f"urn:phr-platform:pseudonym:{municipality_code}"


def source_record_system(municipality_code: str, source: str) -> str:
    """Identifier system for resources derived from one city's source records (e.g. `mch`,
    `vaccination`, `uke`), so a re-run finds the same resource and a corrected row updates it."""
    return f"urn:phr-platform:source:{municipality_code}:{source}"
