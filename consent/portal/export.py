"""Export: everything the person may see, as one FHIR Bundle (JSON) download.

The Bundle (type `collection`) holds, per Patient (the person, then each child), the PHR
server's `Patient/{id}/$everything` searchset Bundle as it came, byte for byte: nested Bundles
are valid FHIR, and nothing needs to be parsed or held in memory: the portal passes the PHR
server's answer on in chunks. The first request is made before the response starts, so a
refusal is still a readable page; a failure later cuts the download short (the file is then
not valid JSON, which a reader notices)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, stream_with_context
from flask.typing import ResponseReturnValue

from consent.portal import phr
from consent.portal.auth import current_subject
from consent.portal.plus_pages import page, people, signed_in_page

bp = Blueprint("portal_export", __name__, template_folder="templates")


@bp.get("/me/export")
@signed_in_page
def export_page() -> ResponseReturnValue:
    return page("plus/export.html")


@bp.get("/me/export/records.json")
@signed_in_page
def export_download() -> ResponseReturnValue:
    client = phr.for_session()
    ids = [p.id for p in people(client, current_subject() or "")]
    first = client.everything(ids[0]) if ids else iter(())
    now = datetime.now(UTC)

    def body() -> Iterator[bytes]:
        head = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "collection",
            "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        yield json.dumps(head)[:-1].encode() + b',"entry":['
        for i, pid in enumerate(ids):
            chunks = first if i == 0 else client.everything(pid)
            yield (b"," if i else b"") + b'{"fullUrl":"urn:uuid:' + str(uuid.uuid4()).encode()
            yield b'","resource":'
            yield from chunks
            yield b"}"
        yield b"]}"

    resp = Response(stream_with_context(body()), mimetype="application/fhir+json")
    stamp = now.strftime("%Y%m%d")
    resp.headers["Content-Disposition"] = f'attachment; filename="phr-records-{stamp}.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
