"""Shared helpers for the connector tests: a small synthetic city, and the PII it contains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors import synth
from connectors.consent import StaticConsent
from connectors.pseudonym import Pseudonymizer
from connectors.register import read as read_register
from connectors.transport import Outcomes, transaction

KEY = "test-pseudonym-key-0123456789abcdef"
CITY = "072028"


def make_city(tmp: Path, n: int = 600, months: int = 2, share: float = 0.3) -> dict[str, Any]:
    files = synth.generate(n, tmp, KEY, seed=7, months=months, consent_share=share)
    return files


def consents(path: Path) -> StaticConsent:
    return StaticConsent(json.loads(path.read_text(encoding="utf-8")))


def pii_strings(register: Path) -> set[str]:
    """Every name, address, resident number and insurance card number of the register."""
    out: set[str] = set()
    for r in read_register(register):
        out |= {r.number, r.name, r.address, r.name.replace(" ", "")}
        if r.insurance_key:
            _insurer, _symbol, number, _branch = r.insurance_key.split("|")
            out.add(number)
    return {s for s in out if s}


def codes_of(register: Path) -> dict[str, str]:
    p = Pseudonymizer(KEY)
    return {r.number: p.code(r.number) for r in read_register(register)}


class Recorder:
    """A sink that keeps every transaction it is given."""

    def __init__(self) -> None:
        self.bundles: list[dict[str, Any]] = []

    def send(self, entries: list[Any]) -> Outcomes:
        self.bundles.append(transaction(entries))
        return Outcomes(created=len(entries))
