"""What a transaction Bundle's conditional requests find: identifier queries
(`Type?identifier=system|value`), whether a system is the connector's own city's, and each
identifier and current row looked up once per Bundle (one query per type)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from phr_core import jsonbytes
from phr_server import profiles
from phr_server.indexing import TYPES
from phr_server.issues import issue
from phr_server.models import StoredResource, TokenIndex, table_of
from phr_server.repository import Repository
from phr_server.validation import Invalid

R = table_of(StoredResource)
T = table_of(TokenIndex)
PSEUDONYM_PREFIX = "urn:phr-platform:pseudonym:"
SOURCE_PREFIX = "urn:phr-platform:source:"
IdentifierKey = tuple[str, str, str]  # resource type, system, value


def own_system(system: str, muni: str) -> bool:
    for prefix in (PSEUDONYM_PREFIX, SOURCE_PREFIX):
        if system.startswith(prefix):
            return system[len(prefix) :].split(":", 1)[0] == muni
    return True


def identifier_query(text: str, where: str) -> tuple[str, str]:
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or "|" not in pairs[0][1]:
        raise Invalid([issue(where, f"{where}: only identifier=system|value is supported")])
    system, value = pairs[0][1].split("|", 1)
    if not system or not value:
        raise Invalid([issue(where, f"{where}: identifier needs system|value")])
    return system, value


def _find_identifiers(
    s: Session, muni: str, wanted: set[IdentifierKey]
) -> dict[IdentifierKey, list[str]]:
    """(type, system, value) → ids of this municipality's resources carrying that identifier:
    one query per type and chunk for all of a Bundle's conditional requests."""
    by_type: dict[str, list[tuple[str, str]]] = {}
    for rtype, system, value in sorted(wanted):
        by_type.setdefault(rtype, []).append((system, value))
    out: dict[IdentifierKey, list[str]] = {}
    for rtype, pairs in by_type.items():
        for chunk in range(0, len(pairs), 500):
            part = pairs[chunk : chunk + 500]
            rows = s.execute(
                select(T.c.system, T.c.code, T.c.resource_id)
                .join(R, and_(R.c.resource_type == T.c.resource_type, R.c.id == T.c.resource_id))
                .where(
                    T.c.resource_type == rtype,
                    T.c.param == "identifier",
                    T.c.code.in_(sorted({v for _, v in part})),
                    R.c.municipality == muni,
                )
            )
            want = set(part)
            for system, code, rid in rows:
                if (system, code) in want:
                    out.setdefault((rtype, system, code), []).append(rid)
    return out


class Lookup:
    """A Bundle's conditional identifiers and current rows, each looked up once (one query per
    type): first to find the entries whose content is already stored, then to plan writes."""

    def __init__(self, s: Session, repo: Repository, muni: str) -> None:
        self.s, self.repo, self.muni = s, repo, muni
        self._ids: dict[IdentifierKey, list[str]] = {}
        self._ids_asked: set[IdentifierKey] = set()
        self._rows: dict[tuple[str, str], StoredResource] = {}
        self._rows_asked: set[tuple[str, str]] = set()

    def identifiers(self, wanted: set[IdentifierKey]) -> dict[IdentifierKey, list[str]]:
        todo = wanted - self._ids_asked
        if todo:
            self._ids.update(_find_identifiers(self.s, self.muni, todo))
            self._ids_asked |= todo
        return {k: self._ids[k] for k in wanted if k in self._ids}

    def rows(self, refs: set[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
        todo = refs - self._rows_asked
        if todo:
            self._rows.update(self.repo.current_many(self.s, todo))
            self._rows_asked |= todo
        return {k: self._rows[k] for k in refs if k in self._rows}

    def stored_unchanged(self, entries: list[Any]) -> set[int]:
        """Indexes of the conditional updates whose resource, as it would be stored (profiles
        stamped, id set, `urn:uuid:` references resolved), has the content MAC of the row
        already stored: a re-sent Patient or Organization, an unchanged re-run. Such a resource
        passed validation when it was stored, so validating it again cannot change the answer
        ("unchanged"); every other entry is validated in full. Anything unusual (a malformed
        request, several matches, a reference to an entry being created) is not a candidate
        and takes the ordinary path, with its ordinary errors."""
        conds: dict[int, IdentifierKey] = {}
        for i, e in enumerate(entries):
            res, req = e["resource"], e.get("request")
            rtype = res.get("resourceType")
            if rtype not in TYPES or not isinstance(req, dict) or req.get("method") != "PUT":
                continue
            url = req.get("url")
            if not isinstance(url, str) or not url.startswith(f"{rtype}?"):
                continue
            try:
                system, value = identifier_query(url.split("?", 1)[1], "request.url")
            except Invalid:
                continue
            if own_system(system, self.muni):
                conds[i] = (rtype, system, value)
        if not conds:
            return set()
        found = self.identifiers(set(conds.values()))
        ids = {i: found[k][0] for i, k in conds.items() if len(found.get(k, ())) == 1}
        rows = self.rows({(conds[i][0], rid) for i, rid in ids.items()})
        refs: dict[str, str] = {}
        for i, rid in ids.items():
            full = entries[i].get("fullUrl")
            if isinstance(full, str) and full.startswith("urn:uuid:"):
                refs[full] = f"{conds[i][0]}/{rid}"
        out: set[int] = set()
        for i, rid in ids.items():
            row = rows.get((conds[i][0], rid))
            if row is None or row.municipality != self.muni or row.content_mac is None:
                continue
            res = json.loads(jsonbytes.dumps(entries[i]["resource"]))  # a copy to resolve in
            if not resolve_urns(res, refs) or res.get("id", rid) != rid:
                continue
            profiles.stamp(res)
            res["id"] = rid
            if self.repo.unchanged(self.s, row, res):
                out.add(i)
        return out


def resolve_urns(node: Any, refs: dict[str, str]) -> bool:
    """Replace `urn:uuid:` references by the stored resources they name, in place; False when
    one names no stored resource."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("urn:uuid:"):
            if ref not in refs:
                return False
            node["reference"] = refs[ref]
        return all(resolve_urns(v, refs) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return all(resolve_urns(v, refs) for v in node if isinstance(v, dict | list))
    return True
