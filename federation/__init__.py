"""OpenID Federation 1.0 for the platform: one trust anchor (a national body), optional
intermediates (prefectures) and every service and app as a federation entity.

Followed: OpenID Federation 1.0 (final specification, 2025; claim names as in draft 43 and
later: `trust_mark_type`, `trust-mark-status-response+jwt`). Layout, after italia/spid-cie-oidc:
`entity/` (statements, fetching, trust chains), `policy.py` (metadata policy), `trust_marks.py`,
`authority/` (the trust anchor / intermediate service) and `publish.py` (entity configurations
served by our own services).
"""
