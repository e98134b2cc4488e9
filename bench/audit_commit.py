"""Time the audit group commit alone (phr_server/audit_batch.py): one-event commits in a loop,
on a database the PHR benchmark loaded (bench/fhir_api.py --state), wall and CPU per commit.

    .venv/bin/python bench/audit_commit.py --state /tmp/audit14c/sqlite.json --commits 2000

Run it under `strace -f -T -e trace=fdatasync,flock` to see which thread waits for the disk
(bench/fhir_api.md, 2026-12-08). It adds AuditEvents to that database: use a copy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phr_core.db import Database
from phr_server.audit_batch import AuditBatch
from phr_server.repository import Repository, new_id
from phr_server.storage import Keyring

HL7 = "http://terminology.hl7.org/CodeSystem/"


def event() -> dict[str, Any]:
    """An AuditEvent of a read, shaped as audit.build makes them."""
    who = "urn:phr-platform:"
    return {
        "resourceType": "AuditEvent",
        "id": new_id(),
        "type": {"system": HL7 + "audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": "R",
        "recorded": "2026-12-08T00:00:00Z",
        "outcome": "0",
        "agent": [
            {"who": {"identifier": {"system": who + "oauth-client", "value": "bench"}}},
            {"who": {"identifier": {"system": who + "phr-subject", "value": "sub"}}},
        ],
        "source": {"observer": {"display": "phr_server"}},
        "entity": [
            {
                "what": {"reference": f"Patient/{uuid.uuid4()}"},
                "type": {"system": HL7 + "audit-entity-type", "code": "1"},
            },
            {"what": {"reference": f"Observation/{uuid.uuid4()}"}},
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--state", required=True, help="the JSON file bench/fhir_api.py wrote")
    ap.add_argument("--commits", type=int, default=2000)
    args = ap.parse_args()
    state = json.loads(Path(args.state).read_text())
    db = Database(state["url"])
    batch = AuditBatch(db, Repository(Keyring(state["master"]), b"bench" * 8))
    batch.commit([event()])  # the first commit loads the data key
    walls, cpus = [], []
    for _ in range(args.commits):
        e = event()
        w0, c0 = time.perf_counter(), time.process_time()
        batch.commit([e])
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)  # every thread of the process (checkpoints too)
    walls.sort()
    ms = [w * 1000 for w in walls]
    print(
        f"{args.commits} commits: wall mean {statistics.mean(ms):.3f} ms, p50 "
        f"{ms[len(ms) // 2]:.3f}, p90 {ms[int(len(ms) * 0.9)]:.3f}, p99 "
        f"{ms[int(len(ms) * 0.99)]:.3f}, max {ms[-1]:.1f}; CPU mean "
        f"{statistics.mean(cpus) * 1000:.3f} ms"
    )
    batch.close()
    db.dispose()


if __name__ == "__main__":
    main()
