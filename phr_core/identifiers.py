"""Identifier systems every service agrees on. A person appears in FHIR only as a
municipality's pseudonymous code; a record only by its source city and source record key."""

from __future__ import annotations

import uuid

# 全国地方公共団体コード of a municipality (Organization.identifier).
MUNICIPALITY_CODE_SYSTEM = "urn:phr-platform:municipality-code"


def pseudonym_system(municipality_code: str) -> str:
    """Patient.identifier system for one city's keyed pseudonymous codes."""
    return f"urn:phr-platform:pseudonym:{municipality_code}"


def source_record_system(municipality_code: str, source: str) -> str:
    """Identifier system for resources derived from one city's source records (e.g. `mch`,
    `vaccination`, `uke`), so a re-run finds the same resource and a corrected row updates it."""
    return f"urn:phr-platform:source:{municipality_code}:{source}"


# A fixed namespace for Patient ids (uuid5 of the pseudonym system and code).
_PATIENT_NAMESPACE = uuid.UUID("6a0f2f5e-3c1d-5b8e-9f61-2d8b1c7e4a90")


def patient_id(municipality_code: str, code: str) -> str:
    """The PHR server's Patient.id for one city's pseudonymous code.

    Derived, not drawn at random, so that the IdP can name the SMART launch `patient` from the
    consent service's (municipality, code) links without asking the PHR server, and so that two
    loads racing to create the same Patient collide on the primary key instead of making two.
    It reveals nothing the code does not: the code is already the city's keyed pseudonym."""
    return str(uuid.uuid5(_PATIENT_NAMESPACE, f"{pseudonym_system(municipality_code)}|{code}"))
