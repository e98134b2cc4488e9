"""How long one service waits for another, in one place, so that every callee's budget is
shorter than its caller's: the callee gives up (and answers a quick, explained 503) before the
caller does, and no request stacks up behind a slow dependency.

    browser ─▶ portal page ──PORTAL_TO_PHR_S──▶ PHR server ──CONSENT_DECISION_S──▶ consent API
    app ─────▶ IdP refresh ──CONSENT_DECISION_S──▶ consent API
    PHR server ──SERVICE_TOKEN_S──▶ IdP /token (its own client-credentials token, cached)

A portal page's read may need a service token and a consent decision in turn, so the portal's
budget covers both with room for the read itself (tests/consent/test_capacity.py checks the
order).
"""

from __future__ import annotations

CONSENT_DECISION_S = 2.0  # PHR server or IdP → consent decision API (an answer from its cache)
SERVICE_TOKEN_S = 2.0  # PHR server → IdP for its client-credentials token
PORTAL_TO_PHR_S = 8.0  # portal page → PHR server (one read or search)
PORTAL_TO_IDP_S = 5.0  # portal → IdP (token refresh for the PHR server)
# How many consent calls one process lets wait on the consent service at once, and how long a
# request waits for a place before it is refused with 503 (a bulkhead: a slow consent service
# costs each PHR server process this many threads, never all of them).
CONSENT_IN_FLIGHT = 4
CONSENT_QUEUE_S = 0.5
RETRY_AFTER_S = 1  # what a shed request's Retry-After says
