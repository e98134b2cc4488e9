"""Reading a child's record across the federation: a family that moved has records in two
cities, each on the PHR server the federation names for that city.

1. Discover the PHR servers: list the trust anchor's protected resources
   (`/list?entity_type=oauth_resource`) and ask the anchor to resolve each one (`/resolve`):
   the answer is the entity's metadata after the federation's policies, with its `resource`
   (the FHIR base URL) and `phr_municipalities` (the cities whose records it holds). The app
   asks the anchor itself, over HTTPS in production, so TLS vouches for the answer; an app that
   takes resolve responses from anyone else must verify their signature with the anchor's keys.
2. Get a token per server: refresh with RFC 8707 `resource=<that server>` (the IdP issues one
   sign-in's tokens for any server the federation vouches for).
3. On each server, find the child: the Patient with the birth date and sex of the record the
   parent opened the app on (the cities know the child by different pseudonymous codes), then
   `Patient/{id}/$everything`, and merge. Each record keeps its source city: the Patient's
   identifier system `urn:phr-platform:pseudonym:<city code>`.

The `patient/` scopes suffice: the SMART launch `patient` is one city's Patient, and each
other city's server opens the same child's record there (docs/apps.md, "The launch patient
across cities"). Standard library and requests only, like the rest of the app.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger("vaccination_app.across_cities")

TIMEOUT = 10
PSEUDONYM_PREFIX = "urn:phr-platform:pseudonym:"
CITY_SYSTEM = "urn:phr-platform:municipality-code"


@dataclass(frozen=True)
class PhrServer:
    entity_id: str
    resource: str  # FHIR base URL
    municipalities: tuple[str, ...]


def _claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT the anchor sent us directly (see the module docstring)."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def phr_servers(anchor: str) -> list[PhrServer]:
    """Every PHR server under the trust anchor whose chain the anchor resolves now."""
    anchor = anchor.rstrip("/")
    ids = requests.get(
        anchor + "/list", params={"entity_type": "oauth_resource"}, timeout=TIMEOUT
    ).json()
    out = []
    for entity_id in ids:
        resp = requests.get(
            anchor + "/resolve",
            params={"sub": entity_id, "trust_anchor": anchor, "entity_type": "oauth_resource"},
            timeout=TIMEOUT,
        )
        if resp.status_code != 200:
            log.warning(
                "%s left out: the anchor does not resolve it (%s)", entity_id, resp.status_code
            )
            continue
        claims = _claims(resp.text.strip())
        if claims.get("iss") != anchor or claims.get("sub") != entity_id:
            continue
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            continue
        md = (claims.get("metadata") or {}).get("oauth_resource") or {}
        resource, cities = md.get("resource"), md.get("phr_municipalities")
        if isinstance(resource, str) and isinstance(cities, list) and cities:
            out.append(PhrServer(entity_id, resource.rstrip("/"), tuple(map(str, cities))))
    return out


def city_of(patient: dict[str, Any]) -> str:
    """The city code in a Patient's pseudonymous identifier ("" when none)."""
    for ident in patient.get("identifier", []):
        system = str(ident.get("system", ""))
        if system.startswith(PSEUDONYM_PREFIX):
            return system[len(PSEUDONYM_PREFIX) :]
    return ""


def same_child(patients: list[dict[str, Any]], child: dict[str, Any]) -> dict[str, Any] | None:
    """The one Patient with the child's birth date and sex; None when there is none or more
    than one (twins: the app cannot tell them apart and shows only what it is sure of)."""
    found = [
        p
        for p in patients
        if p.get("birthDate") == child.get("birthDate") and p.get("gender") == child.get("gender")
    ]
    return found[0] if len(found) == 1 else None


def everything_across(
    get: Callable[[str, str], dict[str, Any]],
    home: str,
    patient: str,
    servers: list[PhrServer],
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(city, resource) of every resource of the child on every server, and the servers that
    could not be read. `get(server, path)` reads one path from one server with that server's
    token; `home`/`patient` are the server and Patient the app was opened on."""
    child = get(home, f"Patient/{patient}")
    records: list[tuple[str, dict[str, Any]]] = []
    failed: list[str] = []
    bases = [home] + [s.resource for s in servers if s.resource != home.rstrip("/")]
    for base in bases:
        try:
            if base == home:
                pid = patient
            else:
                there = get(base, "Patient")
                match = same_child([e["resource"] for e in there.get("entry", [])], child)
                if match is None:
                    continue
                pid = match["id"]
            bundle = get(base, f"Patient/{pid}/$everything")
        except requests.RequestException as exc:
            log.warning("%s could not be read (%s)", base, type(exc).__name__)
            failed.append(base)
            continue
        entries = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        city = next((city_of(r) for r in entries if r.get("resourceType") == "Patient"), "")
        records += [(city, r) for r in entries]
    return records, failed
