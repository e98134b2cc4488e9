"""The access history in the person's download (portal/export.py): every AuditEvent each PHR
server holding their or their children's records shows them, as entries of the download's
Bundle, fetched a page at a time and passed on, so memory stays flat however long the history.

It is in the download because it stays at the PHR servers after the account is deleted
(docs/retention.md) while the person can no longer see it: the delete page offers the download
first. A server that cannot answer adds an OperationOutcome entry saying its history is
missing, like a missing part of the records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from consent.i18n import current_language
from portal import phr
from portal.federated import Reader

PAGE = 100
# One server's access history, read in full: 5,000 pages of 100 is 500,000 events, years of
# daily use by a family, while it bounds what a server paging without end makes the portal
# read; past it (or on a repeated cursor) the history is reported missing, as when unreachable.
MAX_PAGES = 5000


def audit_entries(found: Reader) -> Iterator[bytes]:
    """One Bundle entry (JSON, no separator) per AuditEvent, newest first per server."""
    for server in found.servers:

        def read(cursor: str | None, server: str = server) -> phr.Page:
            def events(client: phr.PhrClient) -> phr.Page | None:
                return client.audit_events(count=PAGE, cursor=cursor)

            page = found.on(server, events, None)
            if page is None:
                raise phr.Unavailable("the access history cannot be read")
            return page

        try:
            for page in phr.follow(read, MAX_PAGES):
                for event in page.resources:
                    yield _entry(event, f"{server.rstrip('/')}/AuditEvent/{event.get('id', '')}")
                if not page.resources:
                    break
        except phr.Unavailable:  # unreachable, or paging without end (phr.follow)
            yield _entry(_missing(found, server), None)


def _entry(resource: dict[str, object], full_url: str | None) -> bytes:
    entry: dict[str, object] = {"resource": resource}
    if full_url is not None:
        entry = {"fullUrl": full_url, **entry}
    return json.dumps(entry, ensure_ascii=False).encode()


def _missing(found: Reader, server: str) -> dict[str, object]:
    """What stands in the download for a server's access history it could not give."""
    cities = dict.fromkeys(s.municipality for s in found.sources if s.server == server)
    return missing_part(
        found,
        cities,
        "{cities}のアクセス履歴は、その市の記録の保管庫につながらず含まれていません。",
        "The access history kept for {cities} is missing: its PHR server could not be reached.",
    )


def missing_part(found: Reader, cities: Iterable[str], ja: str, en: str) -> dict[str, object]:
    """The OperationOutcome that stands in the download for a part a PHR server could not give
    (its records in portal/export.py, its access history here), so the file says what it
    lacks: `ja` and `en` name the part with `{cities}`; the Japanese text comes first when the
    person reads Japanese, the English one always."""
    cities = list(cities)
    text = (
        ja.format(cities="、".join(found.city(c, "ja") for c in cities))
        if current_language() == "ja"
        else ""
    )
    text += en.format(cities=", ".join(found.city(c, "en") for c in cities))
    issue = {"severity": "error", "code": "transient", "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}
