"""Municipality linkage and guardianship (DESIGN.md, "How a person is linked without being
named").

1. A person consents to "city X may provide my data"; unless already linked there, that makes a
   link request carrying the card-verified attributes (name, birth date, sex, address),
   encrypted at rest.
2. The city's connector pulls pending requests, matches them in its resident register and
   answers with the city's pseudonymous code, or with no_match. The attributes are deleted from
   the request in the same transaction; the link subject ↔ (city, code) is stored.
3. The answer may name the person's children (the maternal and child health handbook names
   mother and child): each becomes a guardianship until the child turns GUARDIANSHIP_END_AGE,
   and, when the person asked for it, a consent on the child's behalf for the same categories.
   Both parents can be guardians: each links separately and the city names the child to each.
   Children born later are added by the connector through the guardianship API.
4. The connector extracts only codes with an active consent for its city and category;
   withdrawing the city consent removes the person's code (and their children's, consented by
   them) from that list at once.

The steps live in one module each: `attributes` (checked, sealed), `city_consent` (step 1,
withdrawal, leaving), `link_requests` (step 2), `guardianship` (step 3), `reach` (step 4 and
the PHR server's patient list), `provider_consents` (the consents they share). This package
names the whole of it for the portal, the launcher and the API.
"""

from __future__ import annotations

from consent.linkage.attributes import ATTRIBUTES, AttributeBox
from consent.linkage.city_consent import (
    PROVIDER_PURPOSE,
    consent_to_municipality,
    forget_subject,
    withdraw_municipality,
)
from consent.linkage.guardianship import (
    GUARDIANSHIP_END_AGE,
    MAX_CODE,
    RELATIONSHIPS,
    Child,
    add_children,
    add_children_by_code,
    end_guardianship,
    guardianship_end,
    parse_children,
)
from consent.linkage.link_requests import (
    Conflict,
    NotFound,
    answer,
    expire_pending,
    pending_requests,
)
from consent.linkage.provider_consents import self_consent
from consent.linkage.reach import consented_codes, consented_since, patients

__all__ = [
    "ATTRIBUTES",
    "GUARDIANSHIP_END_AGE",
    "MAX_CODE",
    "PROVIDER_PURPOSE",
    "RELATIONSHIPS",
    "AttributeBox",
    "Child",
    "Conflict",
    "NotFound",
    "add_children",
    "add_children_by_code",
    "answer",
    "consent_to_municipality",
    "consented_codes",
    "consented_since",
    "end_guardianship",
    "expire_pending",
    "forget_subject",
    "guardianship_end",
    "parse_children",
    "patients",
    "pending_requests",
    "self_consent",
    "withdraw_municipality",
]
