"""Deterministic synthetic exports for a city of N residents (`phr connector synth`):
resident register, maternal and child health records, vaccination register, NHI claims in UKE
(医科 and 調剤, one file per month), and a consent file of the codes that consented.

Everything is made up from a seeded generator: the same N, seed and key give the same bytes.
Shapes follow mch.md (checkups, the routine immunization schedule) and uke.md (record order,
field positions, CP932 with CRLF and a final 0x1A).

`people` makes the residents and the register, `mch` the health and vaccination records,
`claims` the UKE files, `consents` the consent file; `generate` writes them all, each module
drawing from the one seeded stream in the same order as before the split (same bytes)."""

from __future__ import annotations

import random
from pathlib import Path

from connectors.pseudonym import Pseudonymizer
from connectors.synth.claims import DISEASES, DRUGS, PROCEDURES, write_claims
from connectors.synth.consents import write_consents
from connectors.synth.mch import (
    GROWTH,
    INFANT_CHECKUPS,
    MANUFACTURERS,
    SCHEDULE,
    write_mch,
    write_vaccinations,
)
from connectors.synth.people import City, Person, make_city, write_register

__all__ = [
    "DISEASES",
    "DRUGS",
    "GROWTH",
    "INFANT_CHECKUPS",
    "MANUFACTURERS",
    "PROCEDURES",
    "SCHEDULE",
    "City",
    "Person",
    "generate",
    "make_city",
    "write_claims",
    "write_consents",
    "write_mch",
    "write_register",
    "write_vaccinations",
]


def generate(
    n: int,
    out: Path,
    key: str,
    *,
    seed: int = 1,
    year: int = 2025,
    months: int = 12,
    consent_share: float = 0.25,
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    city = make_city(n, seed, year)
    rnd = random.Random(seed + 1)  # noqa: S311 - seeded, reproducible synthetic data; not security
    consent_rnd = random.Random(seed + 2)  # noqa: S311 - seeded, reproducible synthetic data
    pseudo = Pseudonymizer(key)
    files: dict[str, object] = {
        "register": write_register(city, out),
        "mch": write_mch(city, out, rnd),
        "vaccination": write_vaccinations(city, out, rnd),
        "claims": write_claims(city, out, rnd, months),
        # its own stream, so who consents does not change with the exports' details
        "consents": write_consents(city, out, pseudo, consent_rnd, consent_share),
    }
    return files
