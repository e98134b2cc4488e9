"""The consent gate: which people consented to which category of extraction, and answering the
platform's link requests from the resident register.

Consent service contract (HTTP, JSON, bearer token from the IdP):
  GET  {consent}/api/v1/municipalities/{code}/consents?category=C  → {"codes": ["<pseudonym>", …]}
  GET  {consent}/api/v1/municipalities/{code}/link-requests         → {"requests": [{"id", "name",
       "birthdate" (YYYY-MM-DD), "sex" (male|female), "address"}, …]}  (a bare list is accepted)
  POST {consent}/api/v1/municipalities/{code}/link-requests/{id}     ← {"code": "<pseudonym>"}
                                                                       or {"status": "no_match"}
Offline: a JSON file {"mch": [codes…], "immunization": […], "claims": […]} replaces the GETs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from connectors import register
from connectors.http import JsonClient, TokenSource
from connectors.pseudonym import Pseudonymizer

# Consent categories the connector asks about, one per source.
CATEGORY_BY_SOURCE = {"mch": "mch", "vaccination": "immunization", "uke": "claims"}
CATEGORIES = tuple(sorted(set(CATEGORY_BY_SOURCE.values())))


class ConsentSource(Protocol):
    def codes(self, category: str) -> set[str]: ...


class FileConsent:
    """Consented codes from a local JSON file (offline operation)."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("consent file must be a JSON object of category → [codes]")
        self._data = {k: set(v) for k, v in data.items() if isinstance(v, list)}

    def codes(self, category: str) -> set[str]:
        return set(self._data.get(category, ()))


class StaticConsent:
    def __init__(self, data: dict[str, Iterable[str]]) -> None:
        self._data = {k: set(v) for k, v in data.items()}

    def codes(self, category: str) -> set[str]:
        return set(self._data.get(category, ()))


class ConsentClient:
    """The consent service over HTTP."""

    def __init__(
        self,
        base_url: str,
        municipality: str,
        tokens: TokenSource | None,
        *,
        ca_file: str | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.client = JsonClient(self.base, ca_file=ca_file)
        self.municipality = municipality
        self.tokens = tokens

    def _headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"Authorization": "Bearer " + self.tokens.token(self.base)}

    def _path(self, suffix: str) -> str:
        return f"/api/v1/municipalities/{quote(self.municipality, safe='')}{suffix}"

    def codes(self, category: str) -> set[str]:
        resp = self.client.request(
            "GET",
            self._path(f"/consents?category={quote(category, safe='')}"),
            headers=self._headers(),
        )
        codes = (resp.body or {}).get("codes")
        if not isinstance(codes, list):
            raise ValueError("consent service answered without a codes list")
        return {c for c in codes if isinstance(c, str)}

    def link_requests(self) -> list[dict[str, Any]]:
        resp = self.client.request("GET", self._path("/link-requests"), headers=self._headers())
        body = resp.body
        if isinstance(body, dict):
            body = body.get("requests", [])
        return [r for r in body or [] if isinstance(r, dict) and "id" in r]

    def answer(self, request_id: str, code: str | None) -> None:
        payload = {"code": code} if code else {"status": "no_match"}
        self.client.request(
            "POST",
            self._path(f"/link-requests/{quote(str(request_id), safe='')}"),
            json_body=payload,
            headers=self._headers(),
        )


@dataclass
class LinkResult:
    matched: int = 0
    no_match: int = 0


def _key(name: str, birthdate: str | date, sex: str, address: str) -> tuple[str, str, str, str]:
    bd = birthdate.isoformat() if isinstance(birthdate, date) else str(birthdate).strip()[:10]
    return (
        register.normalize_text(name),
        bd.replace("/", "-"),
        register.SEX.get(str(sex).strip(), str(sex).strip()),
        register.normalize_text(address),
    )


def match_link_requests(
    requests: list[dict[str, Any]], register_path: Path, pseudo: Pseudonymizer
) -> dict[str, str | None]:
    """request id → pseudonymous code, or None when not exactly one resident matches all four
    card-verified attributes (name, birth date, sex, address; normalised). One register pass."""
    wanted: dict[tuple[str, str, str, str], list[str]] = {}
    for r in requests:
        fields = [r.get(f) for f in ("name", "birthdate", "sex", "address")]
        if not all(isinstance(f, str) and f for f in fields):
            continue  # a malformed request is simply not matched
        k = _key(*fields)  # type: ignore[arg-type]
        wanted.setdefault(k, []).append(str(r["id"]))
    found: dict[tuple[str, str, str, str], list[str]] = {}
    for res in register.read(register_path):
        k = _key(res.name, res.birthdate, res.sex, res.address)
        if k in wanted:
            found.setdefault(k, []).append(res.number)
    out: dict[str, str | None] = {str(r["id"]): None for r in requests}
    for k, ids in wanted.items():
        numbers = found.get(k, [])
        code = pseudo.code(numbers[0]) if len(numbers) == 1 else None
        for i in ids:
            out[i] = code
    return out


def answer_link_requests(
    client: ConsentClient, register_path: Path, pseudo: Pseudonymizer
) -> LinkResult:
    """Fetch pending link requests, match them against the register, post each answer."""
    reqs = client.link_requests()
    result = LinkResult()
    for rid, code in match_link_requests(reqs, register_path, pseudo).items():
        client.answer(rid, code)
        if code:
            result.matched += 1
        else:
            result.no_match += 1
    return result
