"""Export: everything the person may see, as one FHIR Bundle (JSON) download, their access
history (AuditEvents) at the end.

The Bundle (type `collection`) holds, per Patient (the person, then each child; one per city
for a family that moved, from that city's PHR server), the server's `Patient/{id}/$everything`
searchset Bundle as it came, byte for byte: nested Bundles are valid FHIR, and nothing needs to
be parsed or held in memory: the portal passes each server's answer on in chunks. Every
request is made before its part starts: a server that cannot answer adds an OperationOutcome
entry naming its city instead (the download says what it lacks), and when no server answers
at all the person gets a readable page; a failure in the middle of a part cuts the download
short (the file is then not valid JSON, which a reader notices)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, stream_with_context
from flask.typing import ResponseReturnValue

from portal import phr
from portal.federated import Reader, Source, reader
from portal.history_export import audit_entries, missing_part
from portal.plus_pages import page, people, signed_in_page
from portal.session import current_subject

bp = Blueprint("portal_export", __name__, template_folder="templates")


@bp.get("/me/export")
@signed_in_page
def export_page() -> ResponseReturnValue:
    return page("plus/export.html")


@bp.get("/me/export/records.json")
@signed_in_page
def export_download() -> ResponseReturnValue:
    found = reader(current_subject() or "")
    sources = [src for p in people(found) for src in p.sources]
    # A server that could not list its Patients: each of its Patients gets its stand-in.
    sources += [src for src in found.sources if src.server in found.failed]
    parts = [_open(found, sources[0])] if sources else []
    if sources and parts[0] is None and found.everything_failed:
        raise phr.Unavailable("no PHR server holding these records can be reached")
    now = datetime.now(UTC)

    def body() -> Iterator[bytes]:
        head = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "collection",
            "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        yield json.dumps(head)[:-1].encode() + b',"entry":['
        for i, src in enumerate(sources):
            chunks = parts[0] if i == 0 else _open(found, src)
            yield (b"," if i else b"") + b'{"fullUrl":"urn:uuid:' + str(uuid.uuid4()).encode()
            yield b'","resource":'
            if chunks is None:
                yield json.dumps(_missing(found, src), ensure_ascii=False).encode()
            else:
                yield from chunks
            yield b"}"
        for i, event in enumerate(audit_entries(found), start=len(sources)):
            yield (b"," if i else b"") + event  # the access history (portal/history_export.py)
        yield b"]}"

    resp = Response(stream_with_context(body()), mimetype="application/fhir+json")
    stamp = now.strftime("%Y%m%d")
    resp.headers["Content-Disposition"] = f'attachment; filename="phr-records-{stamp}.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _open(found: Reader, src: Source) -> Iterator[bytes] | None:
    """The `$everything` of one Patient, requested now; None when its server cannot answer."""
    return found.on(src.server, lambda c: c.everything(src.patient_id), None)


def _missing(found: Reader, src: Source) -> dict[str, object]:
    """What stands in the download for a part its server could not give."""
    return missing_part(
        found,
        [src.municipality],
        "{cities}の記録は、その市の記録の保管庫につながらず含まれていません。",
        "The records from {cities} are missing: their PHR server could not be reached.",
    )
