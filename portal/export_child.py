"""The downloads of one child's record: the printable PDF (portal.print_pdf) and the CSV
(portal.export_csv), linked from the child's records page.

Both are streamed as they are made, nothing of them kept in memory or written to disk: the
PDF a page at a time (its first page drawn, and so the records it shows read, before the
response starts: a child's usual record fits there whole), the CSV a row at a time (its first
read made before the response starts). Errors before that become the usual pages; like the
JSON export, a failure later cuts the download short."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime

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
    body = print_pdf.chunks(facts, current_language(), now.date(), font_path)
    first = next(body)  # page 1 drawn now (a short printout whole): its reads fail as pages
    resp = Response(stream_with_context(itertools.chain([first], body)), mimetype="application/pdf")
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


def _download(resp: Response, ext: str, now: datetime) -> Response:
    stamp = now.strftime("%Y%m%d")
    resp.headers["Content-Disposition"] = f'attachment; filename="child-record-{stamp}.{ext}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.app_context_processor
def print_words() -> dict[str, object]:
    """The words of the download links on the records page."""
    return {"print_t": WORDS[current_language()]}
