"""Identifier claims: what makes a conditional create safe under concurrency.

Two connectors (or two workers of one) may load the same source row at the same moment. Both
look the identifier up, both find nothing, both would create a resource: two Patients for one
pseudonym. A conditional write that creates a resource therefore also inserts a row into
`fhir_identifier_claim`, whose primary key is (type, municipality, system, value). The
database lets only one of two concurrent inserts commit; the other gets an IntegrityError,
which becomes `Raced`, and the API runs the loser's whole transaction again, where it now finds
the winner's resource and becomes an update or a no-op.

A claim can go stale when a later update drops the identifier from its resource; a new
conditional create then takes the claim over (an UPDATE guarded by the old owner, which the
database serialises the same way)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phr_server.models import IdentifierClaim, TokenIndex

K = IdentifierClaim.__table__
T = TokenIndex.__table__


class Raced(Exception):
    """Another transaction claimed the same identifier first: run this one again."""


Key = tuple[str, str, str, str]  # resource type, municipality, system, value


def claim(s: Session, claims: dict[Key, str]) -> None:
    """Claim each identifier for the resource id it maps to, or raise Raced. Keys are taken in
    sorted order so that two transactions claiming overlapping sets cannot deadlock."""
    for key in sorted(claims):
        rtype, muni, system, value = key
        where = (
            K.c.resource_type == rtype,
            K.c.municipality == muni,
            K.c.system == system,
            K.c.value == value,
        )
        owner = s.scalar(select(K.c.resource_id).where(*where))
        if owner is None:
            try:
                s.execute(
                    insert(K).values(
                        resource_type=rtype,
                        municipality=muni,
                        system=system,
                        value=value,
                        resource_id=claims[key],
                    )
                )
            except IntegrityError:
                raise Raced(f"{rtype} with this identifier was created meanwhile") from None
            continue
        # Taken: by a resource that still carries the identifier (committed after our lookup,
        # so run again and find it), or stale (its resource dropped the identifier since).
        still = s.scalar(
            select(T.c.resource_id).where(
                T.c.resource_type == rtype,
                T.c.resource_id == owner,
                T.c.param == "identifier",
                T.c.system == system,
                T.c.code == value,
            )
        )
        done = None
        if still is None:
            done = s.execute(
                update(K).where(*where, K.c.resource_id == owner).values(resource_id=claims[key])
            )
        if done is None or done.rowcount != 1:
            raise Raced(f"{rtype} with this identifier was created meanwhile")
