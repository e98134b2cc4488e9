"""Writes: `transaction` Bundles from the connectors, all or nothing.

Per entry: `PUT Type?identifier=system|value` (conditional update), `PUT Type/id`, or
`POST Type` (with `ifNoneExist: identifier=system|value` for a conditional create);
`ifMatch: W/"n"` for optimistic locking. `urn:uuid:` fullUrls may be referenced by other
entries; they are replaced by the assigned `Type/id`. Content equal to what is stored is not
written again: the entry answers 200 with an informational "unchanged" outcome, so loading the
same source twice changes nothing. Provenance records what changed: one per Patient whose
records the Bundle changed (in that Patient's compartment), naming the source city.

A connector writes only its own municipality: identifiers in `urn:phr-platform:pseudonym:*`
and `urn:phr-platform:source:*` systems must be its city's, every Patient needs its city's
pseudonymous code, references must point at its city's resources, and only its city's rows
are found by conditional requests."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from phr_core import jsonbytes, pairwise_ids
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM, patient_id, pseudonym_system
from phr_server import personal_data, profiles
from phr_server.claims import Key, claim
from phr_server.dates import instant
from phr_server.indexing import TYPES
from phr_server.issues import issue
from phr_server.models import StoredResource, TokenIndex, utcnow
from phr_server.policy import Access, check
from phr_server.repository import Found, Repository, new_id
from phr_server.validation import REF_RE, Invalid, validate

R = StoredResource.__table__
T = TokenIndex.__table__
PSEUDONYM_PREFIX = "urn:phr-platform:pseudonym:"
SOURCE_PREFIX = "urn:phr-platform:source:"
CLIENT_SYSTEM = "urn:phr-platform:oauth-client"


class PreconditionFailed(Exception):
    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(issues[0]["diagnostics"])
        self.issues = issues


@dataclass
class Outcome:
    status: str
    found: Found
    unchanged: bool = False


@dataclass
class Result:
    entries: list[Outcome]
    provenance: Found | None
    touched: list[str] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    # `Type/id` → the Patient compartments it was written into (no need to ask the database)
    compartments: dict[str, set[str]] = field(default_factory=dict)


def _own_system(system: str, muni: str) -> bool:
    for prefix in (PSEUDONYM_PREFIX, SOURCE_PREFIX):
        if system.startswith(prefix):
            return system[len(prefix) :].split(":", 1)[0] == muni
    return True


def _identifier_query(text: str, where: str) -> tuple[str, str]:
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or "|" not in pairs[0][1]:
        raise Invalid([issue(where, f"{where}: only identifier=system|value is supported")])
    system, value = pairs[0][1].split("|", 1)
    if not system or not value:
        raise Invalid([issue(where, f"{where}: identifier needs system|value")])
    return system, value


def _references(node: Any, path: str):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node, path
        for k, v in node.items():
            if isinstance(v, dict | list):  # leaves hold no reference: no path for them
                yield from _references(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, dict | list):
                yield from _references(v, f"{path}[{i}]")


def _find_identifiers(
    s: Session, muni: str, wanted: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], list[str]]:
    """(type, system, value) → ids of this municipality's resources carrying that identifier:
    one query per type and chunk for all of a Bundle's conditional requests."""
    by_type: dict[str, list[tuple[str, str]]] = {}
    for rtype, system, value in sorted(wanted):
        by_type.setdefault(rtype, []).append((system, value))
    out: dict[tuple[str, str, str], list[str]] = {}
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


class _Lookup:
    """A Bundle's conditional identifiers and current rows, each looked up once (one query per
    type): first to find the entries whose content is already stored, then to plan writes."""

    def __init__(self, s: Session, repo: Repository, muni: str) -> None:
        self.s, self.repo, self.muni = s, repo, muni
        self._ids: dict[tuple[str, str, str], list[str]] = {}
        self._ids_asked: set[tuple[str, str, str]] = set()
        self._rows: dict[tuple[str, str], StoredResource] = {}
        self._rows_asked: set[tuple[str, str]] = set()

    def identifiers(
        self, wanted: set[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[str]]:
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
        conds: dict[int, tuple[str, str, str]] = {}
        for i, e in enumerate(entries):
            res, req = e["resource"], e.get("request")
            rtype = res.get("resourceType")
            if rtype not in TYPES or not isinstance(req, dict) or req.get("method") != "PUT":
                continue
            url = req.get("url")
            if not isinstance(url, str) or not url.startswith(f"{rtype}?"):
                continue
            try:
                system, value = _identifier_query(url.split("?", 1)[1], "request.url")
            except Invalid:
                continue
            if _own_system(system, self.muni):
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
            if not _resolve_urns(res, refs) or res.get("id", rid) != rid:
                continue
            profiles.stamp(res)
            res["id"] = rid
            if self.repo.unchanged(self.s, row, res):
                out.add(i)
        return out


def _resolve_urns(node: Any, refs: dict[str, str]) -> bool:
    """Replace `urn:uuid:` references by the stored resources they name, in place; False when
    one names no stored resource."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("urn:uuid:"):
            if ref not in refs:
                return False
            node["reference"] = refs[ref]
        return all(_resolve_urns(v, refs) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return all(_resolve_urns(v, refs) for v in node if isinstance(v, dict | list))
    return True


def process(s: Session, repo: Repository, access: Access, bundle: Any) -> Result:
    """Apply a transaction Bundle or raise Invalid / PreconditionFailed / Denied."""
    muni = access.municipality or ""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Invalid([issue("Bundle", "POST / takes a Bundle")])
    if bundle.get("type") != "transaction":
        raise Invalid([issue("Bundle.type", "Bundle.type must be transaction")])
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not entries:
        raise Invalid([issue("Bundle.entry", "the Bundle has no entries")])

    # 1. shape of each entry, and what each urn:uuid will be
    urn_types: dict[str, str] = {}
    issues: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        p = f"Bundle.entry[{i}]"
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict):
            issues.append(issue(f"{p}.resource", f"{p} has no resource"))
            continue
        full = e.get("fullUrl")
        if isinstance(full, str) and full.startswith("urn:uuid:"):
            if full in urn_types:
                issues.append(issue(f"{p}.fullUrl", f"{full} appears twice"))
            urn_types[full] = str(res.get("resourceType"))
    if issues:
        raise Invalid(issues)

    # 2. validate every resource, except one whose content is what the server already stores
    #    (validated when it was stored); collect every problem before answering
    lookup = _Lookup(s, repo, muni)
    stored = lookup.stored_unchanged(entries)
    for i, e in enumerate(entries):
        p = f"Bundle.entry[{i}]"
        res = e["resource"]
        # people's details and free text never get in, not even unchanged (personal_data.py)
        issues.extend(personal_data.problems(res, f"{p}.resource"))
        if i not in stored:
            try:
                validate(res, f"{p}.resource", urn_types.get)
            except Invalid as exc:
                issues.extend(exc.issues)
                continue
        rtype = res["resourceType"]
        if not TYPES[rtype].writable:
            issues.append(
                issue(f"{p}.resource.resourceType", f"{rtype} is written by the server only")
            )
        req = e.get("request") or {}
        method = req.get("method")
        if method not in ("PUT", "POST"):
            issues.append(issue(f"{p}.request.method", "request.method must be PUT or POST"))
        url = req.get("url") or ""
        if not (url == rtype or url.startswith((rtype + "?", rtype + "/"))):
            issues.append(issue(f"{p}.request.url", f"request.url must address {rtype}"))
        for j, ident in enumerate(res.get("identifier") or []):
            if not _own_system(ident.get("system", ""), muni):
                issues.append(
                    issue(
                        f"{p}.resource.identifier[{j}].system",
                        "identifier system of another municipality",
                        "forbidden",
                    )
                )
        if rtype == "Patient" and not any(
            ident.get("system") == pseudonym_system(muni) for ident in res.get("identifier") or []
        ):
            issues.append(
                issue(
                    f"{p}.resource.identifier",
                    f"a Patient needs an identifier in {pseudonym_system(muni)}",
                )
            )
    if issues:
        raise Invalid(issues)

    # 3. find each entry's target: every conditional identifier of the Bundle in one query
    #    per type, then every target's current row in one query per type
    targets: list[tuple[int, dict, dict, str | None, tuple[str, str] | None, bool]] = []
    for i, e in enumerate(entries):
        p = f"Bundle.entry[{i}]"
        res, req = dict(e["resource"]), e.get("request") or {}
        profiles.stamp(res)  # the JP Core profiles validate() checked, in meta.profile
        rtype, url, method = res["resourceType"], req.get("url", ""), req["method"]
        existing_only = False
        rid: str | None = None
        cond = None
        if method == "PUT" and "?" in url:
            cond = _identifier_query(url.split("?", 1)[1], f"{p}.request.url")
        elif method == "POST" and req.get("ifNoneExist"):
            cond = _identifier_query(req["ifNoneExist"], f"{p}.request.ifNoneExist")
            existing_only = True
        elif method == "PUT":
            rid = url.split("/", 1)[1]
            if not REF_RE.match(f"{rtype}/{rid}"):
                raise Invalid([issue(f"{p}.request.url", "request.url must be Type/id")])
            if not pairwise_ids.fits(rid):  # apps get each id encrypted, still a FHIR id
                why = f"an id longer than {pairwise_ids.MAX_PLAIN_ID} characters must be a UUID"
                raise Invalid([issue(f"{p}.request.url", why)])
        if cond is not None and not _own_system(cond[0], muni):
            raise Invalid([issue(f"{p}.request.url", "identifier system of another municipality")])
        targets.append((i, res, req, rid, cond, existing_only))
    matches = lookup.identifiers(
        {(res["resourceType"], *cond) for _, res, _, _, cond, _ in targets if cond}
    )
    for i, res, _req, _rid, cond, _x in targets:
        n = len(matches.get((res["resourceType"], *cond), ())) if cond else 0
        if n > 1:
            where = f"Bundle.entry[{i}].request.url"
            raise PreconditionFailed([issue(where, f"{n} resources match", "multiple-matches")])
    ids_of = [
        rid if cond is None else (matches.get((res["resourceType"], *cond)) or [None])[0]
        for _, res, _, rid, cond, _ in targets
    ]
    for k, (_, res, _, _, cond, _) in enumerate(targets):
        new_patient = ids_of[k] is None and cond and res["resourceType"] == "Patient"
        if new_patient and cond[0] == pseudonym_system(muni):
            ids_of[k] = patient_id(muni, cond[1])  # the id the IdP names as SMART `patient`
    rows = lookup.rows(
        {(t[1]["resourceType"], rid) for t, rid in zip(targets, ids_of, strict=True) if rid}
    )

    plan: list[tuple[dict, str, StoredResource | None, bool]] = []  # resource, id, prev, no-op
    taken: dict[str, int] = {}
    urn_refs: dict[str, str] = {}
    claims: dict[Key, str] = {}  # identifiers that conditional creates take (claims.py)
    for (i, res, req, _, cond, existing_only), rid in zip(targets, ids_of, strict=True):
        p = f"Bundle.entry[{i}]"
        rtype = res["resourceType"]
        prev: StoredResource | None = None
        if rid is not None:
            prev = rows.get((rtype, rid))
            if prev is not None and prev.municipality != muni:
                raise Invalid([issue(f"{p}.request.url", f"{rtype}/{rid} cannot be written")])
        if_match = req.get("ifMatch")
        if if_match is not None:
            m = re.fullmatch(r'(?:W/)?"(\d+)"', if_match.strip())
            if not m or prev is None or prev.version_id != int(m.group(1)):
                raise PreconditionFailed(
                    [
                        issue(
                            f"{p}.request.ifMatch",
                            "the resource's version is not " + if_match,
                            "conflict",
                        )
                    ]
                )
        rid = rid or new_id()
        if cond is not None and prev is None:  # a conditional create: claim the identifier
            key = (rtype, muni, cond[0], cond[1])
            if key in claims:
                raise Invalid([issue(f"{p}.request", "two entries create the same identifier")])
            claims[key] = rid
        ref = f"{rtype}/{rid}"
        if ref in taken:
            raise Invalid(
                [issue(f"{p}.request", f"entries {taken[ref]} and {i} address the same resource")]
            )
        taken[ref] = i
        check(access, "update" if prev is not None and not existing_only else "create", rtype)
        res["id"] = rid
        full = entries[i].get("fullUrl")
        if isinstance(full, str) and full.startswith("urn:uuid:"):
            urn_refs[full] = ref
        plan.append((res, rid, prev, existing_only and prev is not None))

    # 4. rewrite urn:uuid references and check every reference points at this city's data
    #    (those outside the Bundle looked up together)
    stored_types = set(TYPES)
    outside: list[tuple[str, str, str]] = []  # path, type, id
    for i, (res, _rid, _prev, _noop) in enumerate(plan):
        for node, path in _references(res, f"Bundle.entry[{i}].resource"):
            ref = node["reference"]
            if ref in urn_refs:
                node["reference"] = ref = urn_refs[ref]
            m = REF_RE.match(ref)
            if not m or m.group(1) not in stored_types or ref in taken:
                continue
            outside.append((path, m.group(1), m.group(2)))
    existing = repo.current_many(s, {(t, i) for _, t, i in outside})
    for path, rtype, rid in outside:
        row = existing.get((rtype, rid))
        if row is None or row.municipality != muni:
            issues.append(issue(f"{path}.reference", f"{rtype}/{rid} does not exist", "not-found"))
    if issues:
        raise Invalid(issues)

    # 5. write what changed, after taking the identifiers that conditional creates claim
    claim(s, claims)
    now = utcnow()
    result = Result([], None)
    out: list[Outcome | None] = []
    writes: list[tuple[dict[str, Any], str, StoredResource | None]] = []
    for k, (res, _rid, prev, noop) in enumerate(plan):
        if prev is not None and (noop or repo.unchanged(s, prev, res)):
            found = Found(prev.resource_type, prev.id, prev.version_id, prev.last_updated, b"")
            out.append(Outcome("200 OK", found, unchanged=True))
            continue
        if targets[k][0] in stored:  # never write what was not validated (cannot happen:
            # stored_unchanged computed the same content): validate it after all
            i = targets[k][0]
            validate(entries[i]["resource"], f"Bundle.entry[{i}].resource", urn_types.get)
        out.append(None)
        writes.append((res, muni, prev))
    written = iter(repo.put_many(s, writes, now))  # all of them in a few statements
    for k, (_res, _rid, prev, _noop) in enumerate(plan):
        if out[k] is None:
            found = next(written)
            out[k] = Outcome("200 OK" if prev is not None else "201 Created", found)
            result.touched.append(f"{found.ref}/_history/{found.version}")
            result.compartments[found.ref] = set(found.patients)
    result.entries = [o for o in out if o is not None]
    if result.touched:
        comp = result.compartments  # what was just written where (no need to ask)
        provs = _provenances(result.touched, comp, muni, access.token.client_id, now)
        result.provenance = repo.put_many(s, [(p, muni, None) for p in provs], now)[0]
        result.patients = {pid for pids in comp.values() for pid in pids}
    return result


PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _provenances(
    touched: list[str], comp: dict[str, set[str]], muni: str, client_id: str, now: Any
) -> list[dict[str, Any]]:
    """The Provenance of one batch: one per Patient compartment it changed (targets: that
    Patient and its versions written, so `$everything` returns it and it names nobody else's
    records), and one for what belongs to no Patient (an Organization). Each names the
    connector (assembler, on behalf of its city) and the source city (custodian), so a record
    keeps its origin wherever it is read (a family that moved; issue 8)."""
    groups: dict[str | None, list[str]] = {}
    for ref in touched:
        owners = comp.get("/".join(ref.split("/")[:2])) or {None}
        for pid in sorted(owners, key=lambda p: p or ""):
            groups.setdefault(pid, []).append(ref)
    out = []
    for pid, refs in groups.items():
        if pid is not None and not any(r.startswith(f"Patient/{pid}/") for r in refs):
            refs = [f"Patient/{pid}", *refs]  # in the Patient's compartment (Provenance.patient)
        out.append(
            {
                "resourceType": "Provenance",
                "id": new_id(),
                "target": [{"reference": r} for r in refs],
                "recorded": instant(now),
                "activity": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                            "code": "UPDATE",
                        }
                    ]
                },
                "agent": provenance_agents(client_id, muni),
            }
        )
    return out


def provenance_agents(client_id: str, municipality: str) -> list[dict[str, Any]]:
    """Who a load came from: the connector (assembler, on behalf of its city) and the source
    city (custodian), the city named by its 全国地方公共団体コード."""
    return [
        {
            "type": {"coding": [{"system": PARTICIPANT, "code": "assembler"}]},
            "who": {"type": "Device", "identifier": {"system": CLIENT_SYSTEM, "value": client_id}},
            "onBehalfOf": _city(municipality),
        },
        {
            "type": {"coding": [{"system": PARTICIPANT, "code": "custodian"}]},
            "who": _city(municipality),
        },
    ]


def _city(municipality: str) -> dict[str, Any]:
    """A Reference to the city as an Organization, by its 全国地方公共団体コード."""
    return {
        "type": "Organization",
        "identifier": {"system": MUNICIPALITY_CODE_SYSTEM, "value": municipality},
    }
