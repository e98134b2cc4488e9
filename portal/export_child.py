"""The downloads of one child's record: the printable PDF (portal.print_pdf) and the CSV
(portal.export_csv), linked from the child's records page.

The PDF is drawn into a temporary file while the records are read (errors before it is done
become the usual pages), then streamed from there in chunks; the CSV is streamed as it is
read, its first read made before the response starts (like the JSON export, a failure later
cuts the download short)."""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from flask import Blueprint, Response, stream_with_context
from flask.typing import ResponseReturnValue

from consent.i18n import current_language
from phr_core.webapp import settings
from portal import export_csv, print_pdf
from portal.export_facts import ChildFacts, child_facts
from portal.federated import reader
from portal.pages import JST
from portal.plus_pages import find, page, people, signed_in_page
from portal.print_words import WORDS
from portal.session import current_subject

log = logging.getLogger(__name__)
bp = Blueprint("portal_export_child", __name__, template_folder="templates")
CHUNK = 64 * 1024
FONT_SETTING = "PHR_CONSENT_PDF_FONT"


@bp.get("/me/children/<pid>/record.pdf")
@signed_in_page
def record_pdf(pid: str) -> ResponseReturnValue:
    font_path = settings().option(FONT_SETTING)
    try:
        print_pdf.font(font_path)
    except print_pdf.FontMissing as exc:
        log.warning("no printable record: %s (set %s)", exc, FONT_SETTING)
        return page("plus/print_unavailable.html", status=503)
    facts = _facts(pid)
    now = datetime.now(JST)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the response is
    try:
        print_pdf.write(spool, facts, current_language(), now.date(), font_path)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    resp = Response(_chunks(spool), mimetype="application/pdf")
    resp.call_on_close(spool.close)
    resp.headers["Content-Length"] = str(size)
    return _download(resp, "pdf", now)


@bp.get("/me/children/<pid>/record.csv")
@signed_in_page
def record_csv(pid: str) -> ResponseReturnValue:
    facts = _facts(pid)
    body = export_csv.lines(facts, current_language())
    first = list(itertools.islice(body, 2))  # the header and the first read's first row
    resp = Response(stream_with_context(itertools.chain(first, body)), mimetype="text/csv")
    return _download(resp, "csv", datetime.now(JST))


def _facts(pid: str) -> ChildFacts:
    found = reader(current_subject() or "")
    child = find(found, people(found), pid, child=True)
    return child_facts(found, child, current_language())


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    while block := spool.read(CHUNK):
        yield block


def _download(resp: Response, ext: str, now: datetime) -> Response:
    stamp = now.strftime("%Y%m%d")
    resp.headers["Content-Disposition"] = f'attachment; filename="child-record-{stamp}.{ext}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.app_context_processor
def print_words() -> dict[str, object]:
    """The words of the download links on the records page."""
    return {"print_t": WORDS[current_language()]}
