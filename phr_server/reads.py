"""The FHIR read routes: read, vread, history, search and `$everything`, each through the
frame in api.py (the policy decides before the route runs; rows come from the repository
under the request's Access), answered with stored bytes in Bundles built without parsing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue

from phr_server import pairwise, repository, search
from phr_server.api import (
    Answer,
    base_url,
    body_out,
    etag_headers,
    fhir,
    handle,
    patients_for,
    ref_out,
    repo,
    stored_id,
)
from phr_server.policy import Access
from phr_server.repository import Found, NotFound

bp = Blueprint("fhir_reads", __name__)


@bp.get("/<rtype>/<rid>")
def read(rtype: str, rid: str) -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        real = stored_id(access, rtype, rid)
        f = repo().read(s, access, rtype, real)
        return (
            fhir(body_out(access, f), headers=etag_headers(f, access)),
            [f.ref],
            patients_for(s, access, [(rtype, real)]),
        )

    return handle("read", "read", rtype, run)


@bp.get("/<rtype>/<rid>/_history/<vid>")
def vread(rtype: str, rid: str, vid: str) -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        if not (vid.isascii() and vid.isdigit()) or len(vid) > 9:  # `²`.isdigit() is True
            raise NotFound(f"{rtype}/{rid}/_history/{vid} is not known")
        real = stored_id(access, rtype, rid)
        f = repo().vread(s, access, rtype, real, int(vid))
        ref = f"{f.ref}/_history/{f.version}"
        return (
            fhir(body_out(access, f), headers=etag_headers(f, access)),
            [ref],
            patients_for(s, access, [(rtype, real)]),
        )

    return handle("vread", "read", rtype, run)


@bp.get("/<rtype>/<rid>/_history")
def history(rtype: str, rid: str) -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        real = stored_id(access, rtype, rid)
        versions = repo().history(s, access, rtype, real)
        self_link = f"{base_url()}/{rtype}/{rid}/_history"  # the id as the caller named it
        entries = [(v, None) for v in versions]
        body = bundle_bytes("history", entries, {"self": self_link}, access=access)
        return fhir(body), [f"{rtype}/{real}"], patients_for(s, access, [(rtype, real)])

    return handle("history-instance", "read", rtype, run)


@bp.get("/<rtype>")
def search_type(rtype: str) -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        args = list(request.args.items(multi=True))
        asked = args
        if access.ids is not None:  # an app's ids and values, mapped back to the stored ones
            args = pairwise.search_args(access.ids, rtype, args)
        q = search.parse(rtype, args, current_app.extensions["phr_cursor_key"])
        if access.ids is not None:  # links repeat the app's own values, never the stored ones
            q.canonical = [(n, v) for n, v in asked if n.partition(":")[0] != "_cursor"]
        if q.summary_count:
            total = repo().count(s, access, q)
            body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": total})
            return fhir(body.encode()), [], set()
        page = repo().search(s, access, q)
        base = f"{base_url()}/{rtype}"
        links = {"self": base + ("?" + urlencode(q.canonical) if q.canonical else "")}
        for rel, cur in (("next", page.next_cursor), ("previous", page.prev_cursor)):
            if cur:
                if access.ids is not None:  # the cursor holds a stored id: sealed for the app
                    cur = access.ids.seal_text("cursor/" + rtype, cur)
                links[rel] = base + "?" + urlencode([*q.canonical, ("_cursor", cur)])
        entries = [(f, "match") for f in page.matches] + [(f, "include") for f in page.includes]
        refs = [f.ref for f, _ in entries]
        patients = patients_for(s, access, [(f.rtype, f.id) for f, _ in entries])
        return fhir(bundle_bytes("searchset", entries, links, access=access)), refs, patients

    return handle("search-type", "search", rtype, run)


@bp.get("/Patient/<pid>/$everything")
def everything(pid: str) -> ResponseReturnValue:
    def run(s: Any, access: Access) -> Answer:
        cut: list[str] = []
        real = stored_id(access, "Patient", pid)
        found = repo().everything(s, access, real, cut)
        links = {"self": f"{base_url()}/Patient/{pid}/$everything"}
        entries = [(f, "match") for f in found]
        body = bundle_bytes("searchset", entries, links, _cut_notice(cut), access=access)
        return fhir(body), [f.ref for f in found], {real}

    return handle("operation", "read", "Patient", run)


def _cut_notice(cut: list[str]) -> bytes | None:
    """A search-mode `outcome` entry saying which types $everything cut at its limit, so an
    export is never silently incomplete; the rest is reached by searching with paging."""
    if not cut:
        return None
    limit = repository.EVERYTHING_LIMIT
    issues = [
        {
            "severity": "warning",
            "code": "too-costly",
            "diagnostics": f"only the first {limit} {t} resources are included; "
            f"search {t}?patient=… to page through all of them",
        }
        for t in cut
    ]
    outcome_ = {"resourceType": "OperationOutcome", "issue": issues}
    return (
        b'{"resource":'
        + json.dumps(outcome_, ensure_ascii=False).encode()
        + b',"search":{"mode":"outcome"}}'
    )


def bundle_bytes(
    btype: str,
    entries: Sequence[tuple[Found, str | None]],
    links: dict[str, str],
    extra: bytes | None = None,
    access: Access | None = None,
) -> bytes:
    """A Bundle around stored bytes, without parsing them (`extra`: one more entry's JSON);
    for an app, each resource and reference in its sector's ids (`access.ids`)."""
    base = base_url()
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": btype,
        "link": [{"relation": k, "url": v} for k, v in links.items()],
    }
    parts = []
    for f, mode in entries:
        ref = ref_out(access, f.ref)
        url = f"{base}/{ref}"  # never version-specific (bdl-8); the version is in the etag
        tail = f',"search":{{"mode":"{mode}"}}' if mode else ""
        if btype == "history":
            first = f.version == 1
            req = {"method": "POST" if first else "PUT", "url": f.rtype if first else ref}
            res = {"status": "201" if first else "200", "etag": f'W/"{f.version}"'}
            tail = f',"request":{json.dumps(req)},"response":{json.dumps(res)}'
        parts.append(
            b'{"fullUrl":'
            + json.dumps(url).encode()
            + b',"resource":'
            + body_out(access, f)
            + tail.encode()
            + b"}"
        )
    if btype == "history":
        head["total"] = len(entries)
    if extra is not None:
        parts.append(extra)
    prefix = json.dumps(head, ensure_ascii=False)[:-1].encode()
    if not parts:
        return prefix + b"}"
    return prefix + b',"entry":[' + b",".join(parts) + b"]}"
