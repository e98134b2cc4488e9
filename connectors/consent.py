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

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from connectors import register
from connectors.http import HttpError, JsonClient, TokenSource
from connectors.pseudonym import Pseudonymizer
from connectors.sources import mch_csv
from connectors.sources.base import Record

# The scope the consent service requires of connectors (consent/API.md).
LINKAGE_SCOPE = "consent/linkage"

# The consent category each source asks about is registered with the source
# (connectors/source_registry.py).


class ConsentSource(Protocol):
    def codes(self, category: str) -> set[str]: ...


def consent_epochs(source: ConsentSource, categories: Iterable[str]) -> dict[str, str]:
    """code → a digest of when the consents covering it were given, per category, from a
    source that knows (the consent service's `since`, after `codes` was asked); empty for one
    that does not. It changes whenever one of them does: the sent cache then forgets that
    person."""
    since = getattr(source, "since", None)
    if since is None:
        return {}
    parts: dict[str, list[str]] = {}
    for category in sorted(categories):
        for code, when in since(category).items():
            parts.setdefault(code, []).append(f"{category}={when}")
    return {
        code: hashlib.sha256(" ".join(p).encode()).hexdigest()[:32] for code, p in parts.items()
    }


class FileConsent:
    """Consented codes from a local JSON file (offline operation); with an optional
    `"since": {category: {code: time}}` as the consent service gives it."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("consent file must be a JSON object of category → [codes]")
        self._data = {k: set(v) for k, v in data.items() if isinstance(v, list)}
        since = data.get("since")
        self._since = (
            {k: dict(v) for k, v in since.items() if isinstance(v, dict)}
            if isinstance(since, dict)
            else {}
        )

    def codes(self, category: str) -> set[str]:
        return set(self._data.get(category, ()))

    def since(self, category: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._since.get(category, {}).items()}


class StaticConsent:
    def __init__(
        self,
        data: dict[str, Iterable[str]],
        since: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._data = {k: set(v) for k, v in data.items()}
        self._since = since or {}

    def codes(self, category: str) -> set[str]:
        return set(self._data.get(category, ()))

    def since(self, category: str) -> dict[str, str]:
        return dict(self._since.get(category, {}))


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
        self._since: dict[str, dict[str, str]] = {}

    def _headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"Authorization": "Bearer " + self.tokens.token(self.base, scope=LINKAGE_SCOPE)}

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
        since = (resp.body or {}).get("since")
        self._since[category] = (
            {k: v for k, v in since.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(since, dict)
            else {}
        )
        return {c for c in codes if isinstance(c, str)}

    def since(self, category: str) -> dict[str, str]:
        """code → when its consent was given, as the last `codes(category)` answered."""
        return dict(self._since.get(category, {}))

    def link_requests(self) -> list[dict[str, Any]]:
        resp = self.client.request("GET", self._path("/link-requests"), headers=self._headers())
        body = resp.body
        if isinstance(body, dict):
            body = body.get("requests", [])
        return [r for r in body or [] if isinstance(r, dict) and "id" in r]

    def answer(
        self, request_id: str, code: str | None, children: list[dict[str, str]] | None = None
    ) -> bool:
        """Post the answer; False when the request is no longer pending (409)."""
        payload: dict[str, Any] = {"code": code} if code else {"status": "no_match"}
        if code and children:
            payload["children"] = children
        try:
            self.client.request(
                "POST",
                self._path(f"/link-requests/{quote(str(request_id), safe='')}"),
                json_body=payload,
                headers=self._headers(),
            )
        except HttpError as exc:
            if exc.status == 409:
                return False
            raise
        return True


@dataclass
class LinkResult:
    matched: int = 0
    no_match: int = 0
    no_longer_pending: int = 0
    children: int = 0


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
        k = _key(*fields)  # type: ignore[arg-type]  # all str: checked just above
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


def children_of(mch_path: Path, mothers: set[str], pseudo: Pseudonymizer) -> dict[str, list[str]]:
    """mother's code → her children's resident numbers, from the MCH export's mother–child
    linkage (delivery and infant-checkup rows), for the mothers asked about only."""
    out: dict[str, list[str]] = {}
    for item in mch_csv.read(mch_path):
        if isinstance(item, Record) and item.data.get("mother"):
            mcode = pseudo.code(item.data["mother"])
            if mcode in mothers and item.resident not in out.setdefault(mcode, []):
                out[mcode].append(item.resident)
    return out


def answer_link_requests(
    client: ConsentClient,
    register_path: Path,
    pseudo: Pseudonymizer,
    mch_path: Path | None = None,
) -> LinkResult:
    """Fetch pending link requests, match them against the register, post each answer. With
    the MCH export, a matched mother's answer names her children (code, birth date from the
    register, relationship "mother"), so the platform can record the guardianship."""
    reqs = client.link_requests()
    result = LinkResult()
    answers = match_link_requests(reqs, register_path, pseudo)
    kids: dict[str, list[str]] = {}
    births: dict[str, str] = {}
    matched = {c for c in answers.values() if c}
    if mch_path is not None and matched:
        kids = children_of(mch_path, matched, pseudo)
        wanted = {n for ns in kids.values() for n in ns}
        for r in register.read(register_path):
            if r.number in wanted:
                births[r.number] = r.birthdate.isoformat()
    for rid, code in answers.items():
        children = [
            {"code": pseudo.code(n), "birthdate": births[n], "relationship": "mother"}
            for n in kids.get(code or "", [])
            if n in births
        ]
        if not client.answer(rid, code, children):
            result.no_longer_pending += 1
        elif code:
            result.matched += 1
            result.children += len(children)
        else:
            result.no_match += 1
    return result
