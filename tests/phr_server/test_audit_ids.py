"""What makes a read's audit commit cheaper keeps the AuditEvent what it was: ids are
time-ordered UUIDs (audit.time_ordered_id: appended events land at the end of the id indexes
instead of on a random page), still valid and unique FHIR ids; and the index rows built without
the general walk (audit.index_values) are the ones `indexing.extract` gives."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from phr_core.tokens import AccessToken
from phr_server.audit import build, index_values, time_ordered_id
from phr_server.indexing import extract
from phr_server.policy import Access

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def test_ids_are_version_7_uuids_in_time_order_and_unique() -> None:
    earlier = [time_ordered_id() for _ in range(5_000)]
    time.sleep(0.002)
    later = time_ordered_id()
    assert len(set(earlier)) == len(earlier)
    for rid in (*earlier[:50], later):
        u = uuid.UUID(rid)
        assert FHIR_ID.fullmatch(rid) and str(u) == rid
        assert u.version == 7 and u.variant == uuid.RFC_4122
    assert all(later > rid for rid in earlier)  # a later millisecond sorts after
    millis = int(later.replace("-", "")[:12], 16)
    assert abs(millis - time.time() * 1000) < 5_000


def _access(grant: str | None, first_party: bool = False, muni: str | None = None) -> Access:
    token = AccessToken(
        subject="sub-1",
        client_id="app-1",
        scopes=frozenset({"patient/*.rs"}),
        expires_at=int(time.time()) + 60,
        grant_id=grant,
        municipality=muni,
        first_party=first_party,
    )
    return Access(token, "raw", [], frozenset({"p1", "p2"}), {"p1": "self", "p2": "child"})


@pytest.mark.parametrize(
    "access",
    [_access("g1"), _access(None, first_party=True), _access(None, muni="072028")],
    ids=["app", "portal", "connector"],
)
@pytest.mark.parametrize(
    ("subtype", "outcome", "refs", "patients", "query"),
    [
        ("read", "0", ["Observation/o1"], {"p1"}, None),
        ("search-type", "0", ["Observation/o1", "Patient/p2"], {"p1", "p2"}, "/Observation?x=1"),
        ("vread", "4", [], set(), None),
        ("transaction", "0", ["Patient/p1/_history/2"], {"p1"}, None),
        ("update", "0", ["Patient/p1"], set(), None),
    ],
)
def test_the_direct_index_of_an_audit_event_is_what_extract_gives(
    access: Access,
    subtype: str,
    outcome: str,
    refs: list[str],
    patients: set[str],
    query: str | None,
) -> None:
    event = build(access, subtype, outcome, refs, patients, query)
    stored = {**event, "meta": {"versionId": "1", "lastUpdated": event["recorded"]}}
    assert index_values(stored) == extract(stored)
    assert index_values(stored).tokens and index_values(stored).dates
