"""What the PHR server has already acknowledged, per resource: a content hash keyed by the
resource's identity, in the connector database. A re-run maps every consented row again but
sends only rows whose resources changed, so an unchanged re-run costs reading and hashing, not
validation and HTTP. At the start of a run, entries of people no longer consenting are
evicted, and so are those of people whose consent was given anew since (the consent service's
`since` changed: they may have withdrawn, had their records deleted and consented again, all
between two runs), so such a person gets everything resent; `--full` ignores the cache."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table, delete, insert, select

from connectors.mapping.common import Entry
from connectors.models import ConsentEpoch, SentResource
from phr_core import jsonbytes
from phr_core.db import Database, rowcount

CHUNK = 500
# Core tables (one executemany for thousands of rows); a declarative class's __table__ is its
# Table, which the stubs type only as a FromClause.
S = cast(Table, SentResource.__table__)
E = cast(Table, ConsentEpoch.__table__)


def identity(entry: Entry) -> str:
    return entry.full_url.removeprefix("urn:uuid:")


def content_hash(entry: Entry) -> str:
    raw = jsonbytes.dumps(entry.resource, sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:18]).decode()


class SentCache:
    def __init__(self, db: Database, municipality: str) -> None:
        self.db = db
        self.municipality = municipality

    def known(self, identities: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(identities))
        out: dict[str, str] = {}
        with self.db.session() as s:
            for i in range(0, len(ids), CHUNK):
                part = ids[i : i + CHUNK]
                rows = s.execute(
                    select(SentResource.identity, SentResource.content_hash).where(
                        SentResource.municipality_code == self.municipality,
                        SentResource.identity.in_(part),
                    )
                )
                out.update({a: b for a, b in rows})
        return out

    def remember(self, items: dict[str, tuple[str, str]]) -> None:
        """identity → (patient code or "", content hash), after the server acknowledged them."""
        if not items:
            return
        ids = list(items)
        with self.db.session() as s:
            for i in range(0, len(ids), CHUNK):
                part = ids[i : i + CHUNK]
                s.execute(
                    delete(SentResource).where(
                        SentResource.municipality_code == self.municipality,
                        SentResource.identity.in_(part),
                    )
                )
            s.execute(  # Core, not ORM objects: one executemany for thousands of rows
                insert(S),
                [
                    {
                        "municipality_code": self.municipality,
                        "identity": k,
                        "patient_code": v[0],
                        "content_hash": v[1],
                    }
                    for k, v in items.items()
                ],
            )

    def evict_reconsented(self, epochs: dict[str, str]) -> int:
        """Forget the resources of people whose consent was given anew since they were sent
        (`epochs`: code → when the consent covering it was given, as the consent service says;
        a person withdraws, has the records deleted and consents again, all between two runs:
        without this, their records would never be sent again). A person seen for the first
        time with entries already cached (a cache from before epochs were kept) is forgotten
        too: sending again is harmless, never sending is not. Then remember the epochs."""
        if not epochs:
            return 0
        with self.db.session() as s:
            known = {
                code: since
                for code, since in s.execute(
                    select(E.c.patient_code, E.c.since).where(
                        E.c.municipality_code == self.municipality
                    )
                )
            }
            changed = [c for c, since in epochs.items() if known.get(c) != since]
            n = 0
            for i in range(0, len(changed), CHUNK):
                part = changed[i : i + CHUNK]
                res = s.execute(
                    delete(S).where(
                        S.c.municipality_code == self.municipality, S.c.patient_code.in_(part)
                    )
                )
                n += rowcount(res)
                s.execute(
                    delete(E).where(
                        E.c.municipality_code == self.municipality, E.c.patient_code.in_(part)
                    )
                )
            if changed:
                s.execute(
                    insert(E),
                    [
                        {"municipality_code": self.municipality, "patient_code": c,
                         "since": epochs[c][:40]}
                        for c in changed
                    ],
                )  # fmt: skip
            return n

    def evict_except(self, consented: set[str]) -> int:
        """Forget resources of people who are no longer among the consented codes."""
        with self.db.session() as s:
            codes = set(
                s.scalars(
                    select(SentResource.patient_code)
                    .where(SentResource.municipality_code == self.municipality)
                    .distinct()
                )
            )
            gone = [c for c in codes if c and c not in consented]
            n = 0
            for i in range(0, len(gone), CHUNK):
                res = s.execute(
                    delete(SentResource).where(
                        SentResource.municipality_code == self.municipality,
                        SentResource.patient_code.in_(gone[i : i + CHUNK]),
                    )
                )
                n += rowcount(res)
                s.execute(
                    delete(E).where(
                        E.c.municipality_code == self.municipality,
                        E.c.patient_code.in_(gone[i : i + CHUNK]),
                    )
                )
            return n
