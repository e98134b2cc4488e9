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

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from phr_core import pairwise_ids
from phr_core.identifiers import patient_id, pseudonym_system
from phr_server import personal_data, profiles
from phr_server.claims import Key, claim
from phr_server.conditional import Lookup, identifier_query, own_system
from phr_server.indexing import TYPES
from phr_server.issues import issue
from phr_server.models import StoredResource, utcnow
from phr_server.policy import Access, check
from phr_server.provenance import provenances
from phr_server.repository import Found, Repository, new_id
from phr_server.validation import Invalid, validate
from phr_server.validation.references import REF_RE

Issues = list[dict[str, Any]]


class PreconditionFailed(Exception):
    def __init__(self, issues: Issues) -> None:
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


@dataclass
class Target:
    """One entry and what its request addresses, filled in step by step."""

    index: int
    resource: dict[str, Any]  # a copy, profiles stamped; its id is set once planned
    request: dict[str, Any]
    full_url: Any
    rid: str | None = None  # from `PUT Type/id`, or what a conditional request finds
    cond: tuple[str, str] | None = None  # (system, value) of a conditional request
    existing_only: bool = False  # `POST` with `ifNoneExist`: never an update
    prev: StoredResource | None = None  # the current row, when there is one
    noop: bool = False  # an `ifNoneExist` that found its resource: nothing to write

    @property
    def rtype(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def at(self) -> str:
        return f"Bundle.entry[{self.index}]"


def process(s: Session, repo: Repository, access: Access, bundle: Any) -> Result:
    """Apply a transaction Bundle or raise Invalid / PreconditionFailed / Denied. The steps run
    in this order, each refusing (with every problem it can name) before the next runs."""
    muni = access.municipality or ""
    entries = _entries(bundle)
    urn_types = _urn_types(entries)  # 1. each entry's shape, what each urn:uuid will be
    lookup = Lookup(s, repo, muni)
    stored = lookup.stored_unchanged(entries)  # 2. validate all but what is stored as is
    _refuse(
        [p for i, e in enumerate(entries) for p in _problems(i, e, i in stored, urn_types, muni)]
    )
    targets = [_target(i, e, muni) for i, e in enumerate(entries)]  # 3. what each addresses
    rows = _find(targets, lookup, muni)
    plan = _plan(access, targets, rows, muni)
    _check_references(s, repo, plan, muni)  # 4. references: resolved, and this city's
    claim(s, plan.claims)  # 5. write what changed, after taking the identifiers
    return _write(s, repo, access, plan, entries, stored, urn_types, muni)


def _refuse(issues: Issues) -> None:
    if issues:
        raise Invalid(issues)


def _entries(bundle: Any) -> list[Any]:
    """The entries of a transaction Bundle, or Invalid."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Invalid([issue("Bundle", "POST / takes a Bundle")])
    if bundle.get("type") != "transaction":
        raise Invalid([issue("Bundle.type", "Bundle.type must be transaction")])
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not entries:
        raise Invalid([issue("Bundle.entry", "the Bundle has no entries")])
    return entries


def _urn_types(entries: list[Any]) -> dict[str, str]:
    """Step 1: every entry holds a resource; `urn:uuid:` fullUrl → the type it will be."""
    urn_types: dict[str, str] = {}
    issues: Issues = []
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
    _refuse(issues)
    return urn_types


def _problems(
    i: int, e: dict[str, Any], stored: bool, urn_types: dict[str, str], muni: str
) -> Issues:
    """Step 2, one entry: what is wrong with it. A resource whose content the server already
    stores was validated when it was stored; people's details and free text never get in, not
    even unchanged (personal_data.py)."""
    p = f"Bundle.entry[{i}]"
    res = e["resource"]
    issues = personal_data.problems(res, f"{p}.resource")
    if not stored:
        try:
            validate(res, f"{p}.resource", urn_types.get)
        except Invalid as exc:
            return issues + exc.issues
    rtype = res["resourceType"]
    if not TYPES[rtype].writable:
        issues.append(issue(f"{p}.resource.resourceType", f"{rtype} is written by the server only"))
    req = e.get("request") or {}
    if req.get("method") not in ("PUT", "POST"):
        issues.append(issue(f"{p}.request.method", "request.method must be PUT or POST"))
    url = req.get("url") or ""
    if not (url == rtype or url.startswith((rtype + "?", rtype + "/"))):
        issues.append(issue(f"{p}.request.url", f"request.url must address {rtype}"))
    idents = res.get("identifier") or []
    for j, ident in enumerate(idents):
        if not own_system(ident.get("system", ""), muni):
            where = f"{p}.resource.identifier[{j}].system"
            issues.append(issue(where, "identifier system of another municipality", "forbidden"))
    if rtype == "Patient" and not any(x.get("system") == pseudonym_system(muni) for x in idents):
        why = f"a Patient needs an identifier in {pseudonym_system(muni)}"
        issues.append(issue(f"{p}.resource.identifier", why))
    return issues


def _target(i: int, e: dict[str, Any], muni: str) -> Target:
    """Step 3, one entry: what its request addresses (an id, or an identifier to look up)."""
    res, req = dict(e["resource"]), e.get("request") or {}
    profiles.stamp(res)  # the JP Core profiles validate() checked, in meta.profile
    t = Target(i, res, req, e.get("fullUrl"))
    url, method = req.get("url", ""), req["method"]
    if method == "PUT" and "?" in url:
        t.cond = identifier_query(url.split("?", 1)[1], f"{t.at}.request.url")
    elif method == "POST" and req.get("ifNoneExist"):
        t.cond = identifier_query(req["ifNoneExist"], f"{t.at}.request.ifNoneExist")
        t.existing_only = True
    elif method == "PUT":
        t.rid = url.split("/", 1)[1]
        if not REF_RE.match(f"{t.rtype}/{t.rid}"):
            raise Invalid([issue(f"{t.at}.request.url", "request.url must be Type/id")])
        if not pairwise_ids.fits(t.rid):  # apps get each id encrypted, still a FHIR id
            why = f"an id longer than {pairwise_ids.MAX_PLAIN_ID} characters must be a UUID"
            raise Invalid([issue(f"{t.at}.request.url", why)])
    if t.cond is not None and not own_system(t.cond[0], muni):
        why = "identifier system of another municipality"
        raise Invalid([issue(f"{t.at}.request.url", why)])
    return t


def _find(
    targets: list[Target], lookup: Lookup, muni: str
) -> dict[tuple[str, str], StoredResource]:
    """Step 3: each conditional target's id (every identifier of the Bundle in one query per
    type; more than one match is refused), a new Patient's the one the IdP names as SMART
    `patient`; then every target's current row, in one query per type."""
    matches = lookup.identifiers({(t.rtype, *t.cond) for t in targets if t.cond})
    for t in targets:
        n = len(matches.get((t.rtype, *t.cond), ())) if t.cond else 0
        if n > 1:
            where = f"{t.at}.request.url"
            raise PreconditionFailed([issue(where, f"{n} resources match", "multiple-matches")])
    for t in targets:
        if t.cond is None:
            continue
        found = matches.get((t.rtype, *t.cond))
        t.rid = found[0] if found else None
        if t.rid is None and t.rtype == "Patient" and t.cond[0] == pseudonym_system(muni):
            t.rid = patient_id(muni, t.cond[1])
    return lookup.rows({(t.rtype, t.rid) for t in targets if t.rid})


@dataclass
class Plan:
    """What the Bundle will write, as step 3 worked it out."""

    targets: list[Target]
    claims: dict[Key, str] = field(default_factory=dict)  # conditional creates' (claims.py)
    urn_refs: dict[str, str] = field(default_factory=dict)  # urn:uuid: → Type/id
    taken: dict[str, int] = field(default_factory=dict)  # Type/id → entry index


def _plan(
    access: Access, targets: list[Target], rows: dict[tuple[str, str], StoredResource], muni: str
) -> Plan:
    """Step 3: each target's row checked (this city's, the version `ifMatch` names), its id
    fixed, the identifiers conditional creates claim, and the policy asked per entry."""
    plan = Plan(targets)
    for t in targets:
        _plan_entry(plan, access, t, rows, muni)
    return plan


def _plan_entry(
    plan: Plan,
    access: Access,
    t: Target,
    rows: dict[tuple[str, str], StoredResource],
    muni: str,
) -> None:
    if t.rid is not None:
        t.prev = rows.get((t.rtype, t.rid))
        if t.prev is not None and t.prev.municipality != muni:
            raise Invalid([issue(f"{t.at}.request.url", f"{t.rtype}/{t.rid} cannot be written")])
    if_match = t.request.get("ifMatch")
    if if_match is not None:
        m = re.fullmatch(r'(?:W/)?"(\d+)"', if_match.strip())
        if not m or t.prev is None or t.prev.version_id != int(m.group(1)):
            why = "the resource's version is not " + if_match
            raise PreconditionFailed([issue(f"{t.at}.request.ifMatch", why, "conflict")])
    rid = t.rid = t.rid or new_id()
    if t.cond is not None and t.prev is None:  # a conditional create: claim the identifier
        key = (t.rtype, muni, t.cond[0], t.cond[1])
        if key in plan.claims:
            raise Invalid([issue(f"{t.at}.request", "two entries create the same identifier")])
        plan.claims[key] = rid
    ref = f"{t.rtype}/{rid}"
    if ref in plan.taken:
        why = f"entries {plan.taken[ref]} and {t.index} address the same resource"
        raise Invalid([issue(f"{t.at}.request", why)])
    plan.taken[ref] = t.index
    check(access, "update" if t.prev is not None and not t.existing_only else "create", t.rtype)
    t.resource["id"] = rid
    if isinstance(t.full_url, str) and t.full_url.startswith("urn:uuid:"):
        plan.urn_refs[t.full_url] = ref
    t.noop = t.existing_only and t.prev is not None


def _check_references(s: Session, repo: Repository, plan: Plan, muni: str) -> None:
    """Step 4: `urn:uuid:` references rewritten to the ids planned; every other reference
    must name a stored resource of this city (those outside the Bundle looked up together)."""
    outside: list[tuple[str, str, str]] = []  # path, type, id
    for t in plan.targets:
        for node, path in references(t.resource, f"{t.at}.resource"):
            ref = node["reference"]
            if ref in plan.urn_refs:
                node["reference"] = ref = plan.urn_refs[ref]
            m = REF_RE.match(ref)
            if not m or m.group(1) not in TYPES or ref in plan.taken:
                continue
            outside.append((path, m.group(1), m.group(2)))
    existing = repo.current_many(s, {(t, i) for _, t, i in outside})
    issues: Issues = []
    for path, rtype, rid in outside:
        row = existing.get((rtype, rid))
        if row is None or row.municipality != muni:
            issues.append(issue(f"{path}.reference", f"{rtype}/{rid} does not exist", "not-found"))
    _refuse(issues)


def references(node: Any, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every `{reference: ...}` node under `node`, with its path."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node, path
        for k, v in node.items():
            if isinstance(v, dict | list):  # leaves hold no reference: no path for them
                yield from references(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, dict | list):
                yield from references(v, f"{path}[{i}]")


def _write(
    s: Session,
    repo: Repository,
    access: Access,
    plan: Plan,
    entries: list[Any],
    stored: set[int],
    urn_types: dict[str, str],
    muni: str,
) -> Result:
    """Step 5: what changed, in a few statements for the lot (repository.put_many); what is
    unchanged answers 200 "unchanged"; one Provenance per Patient whose records changed."""
    now = utcnow()
    out: list[Outcome | None] = []
    writes: list[tuple[dict[str, Any], str, StoredResource | None]] = []
    for t in plan.targets:
        if t.prev is not None and (t.noop or repo.unchanged(s, t.prev, t.resource)):
            p = t.prev
            found = Found(p.resource_type, p.id, p.version_id, p.last_updated, b"")
            out.append(Outcome("200 OK", found, unchanged=True))
            continue
        if t.index in stored:  # never write what was not validated (cannot happen:
            # stored_unchanged computed the same content): validate it after all
            validate(entries[t.index]["resource"], f"{t.at}.resource", urn_types.get)
        out.append(None)
        writes.append((t.resource, muni, t.prev))
    result = Result([], None)
    written = iter(repo.put_many(s, writes, now))  # all of them in a few statements
    for k, t in enumerate(plan.targets):
        if out[k] is None:
            found = next(written)
            out[k] = Outcome("200 OK" if t.prev is not None else "201 Created", found)
            result.touched.append(f"{found.ref}/_history/{found.version}")
            result.compartments[found.ref] = set(found.patients)
    result.entries = [o for o in out if o is not None]
    if result.touched:
        comp = result.compartments  # what was just written where (no need to ask)
        provs = provenances(result.touched, comp, muni, access.token.client_id, now)
        result.provenance = repo.put_many(s, [(p, muni, None) for p in provs], now)[0]
        result.patients = {pid for pids in comp.values() for pid in pids}
    return result
