"""Who in the synthetic city consented: the pseudonymous codes of the consent file."""

from __future__ import annotations

import json
import random
from pathlib import Path

from connectors.pseudonym import Pseudonymizer
from connectors.synth.people import City


def write_consents(
    city: City, out: Path, pseudo: Pseudonymizer, rnd: random.Random, share: float
) -> Path:
    """About `share` of households consent (a mother's consent covers her children)."""
    codes: set[str] = set()
    by_no = {p.number: p for p in city.people}
    for p in city.people:
        if p.mother:
            continue
        if rnd.random() < share:
            codes.add(pseudo.code(p.number))
            for c in p.children:
                codes.add(pseudo.code(by_no[c].number))
    data = {"mch": sorted(codes), "immunization": sorted(codes), "claims": sorted(codes)}
    path = out / "consents.json"
    path.write_text(json.dumps(data, indent=0), encoding="utf-8")
    return path
