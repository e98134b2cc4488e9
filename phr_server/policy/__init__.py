"""The PHR server's one policy point. Every read, search, write and erase gets its Access from
`authorize()` (point.py), and every row leaves the database under that Access's `visible()`
condition (access.py, applied by the repository).

* scopes.py: SMART scope algebra (parsing, narrowing to a grant);
* consent_client.py: the consent service's answers (grants, whose Patients), over HTTP
  (kept-alive connections: keepalive.py);
* decision.py: who reaches which Patients (grants, launch `patient`, first party, connectors);
* access.py: the request's Access and the SQL condition on rows;
* point.py: the entry point and the per-action rules (write, erase)."""

from phr_server.policy.access import Access
from phr_server.policy.consent_client import (
    CONSENT_TTL_S,
    ClientCredentials,
    ConsentDirectory,
    Grant,
    HttpConsentDirectory,
    InMemoryConsentDirectory,
    PatientLink,
)
from phr_server.policy.decision import PatientResolver, decide, launch_reach
from phr_server.policy.errors import ConsentUnavailable, Denied, NotServed, Refused
from phr_server.policy.point import ERASE_SCOPE, Action, Sources, authorize, check
from phr_server.policy.scopes import Scope, parse_scope

__all__ = [
    "CONSENT_TTL_S",
    "ERASE_SCOPE",
    "Access",
    "Action",
    "ClientCredentials",
    "ConsentDirectory",
    "ConsentUnavailable",
    "Denied",
    "Grant",
    "HttpConsentDirectory",
    "InMemoryConsentDirectory",
    "NotServed",
    "PatientLink",
    "PatientResolver",
    "Refused",
    "Scope",
    "Sources",
    "authorize",
    "check",
    "decide",
    "launch_reach",
    "parse_scope",
]
