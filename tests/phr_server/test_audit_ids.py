"""AuditEvent ids are time-ordered UUIDs (audit.time_ordered_id): appended events land at the
end of the id indexes instead of on a random page, which is what makes a read's audit commit
cheaper. They stay valid, unique, unguessable-enough FHIR ids."""

from __future__ import annotations

import re
import time
import uuid

from phr_server.audit import time_ordered_id

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
