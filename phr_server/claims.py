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

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phr_server.bulk import insert_rows
from phr_server.models import IdentifierClaim, TokenIndex

K = IdentifierClaim.__table__
T = TokenIndex.__table__


class Raced(Exception):
    """Another transaction claimed the same identifier first: run this one again."""


Key = tuple[str, str, str, str]  # resource type, municipality, system, value


BATCH = 500  # keys per lookup statement


def claim(s: Session, claims: dict[Key, str]) -> None:
    """Claim each identifier for the resource id it maps to, or raise Raced. Keys are taken in
    sorted order so that two transactions claiming overlapping sets cannot deadlock.

    A bulk load claims hundreds of identifiers per Bundle: the owners are looked up a batch at
    a time and the free ones inserted in one statement (COPY on PostgreSQL); only taken keys
    (rare: a race, or a stale claim) are handled one by one."""
    keys = sorted(claims)
    owners: dict[Key, str] = {}
    for i in range(0, len(keys), BATCH):
        chunk = keys[i : i + BATCH]
        cols = tuple_(K.c.resource_type, K.c.municipality, K.c.system, K.c.value)
        for row in s.execute(
            select(
                K.c.resource_type, K.c.municipality, K.c.system, K.c.value, K.c.resource_id
            ).where(cols.in_(chunk))
        ):
            owners[(row[0], row[1], row[2], row[3])] = row[4]
    free = [
        {"resource_type": k[0], "municipality": k[1], "system": k[2], "value": k[3],
         "resource_id": claims[k]}
        for k in keys
        if k not in owners
    ]  # fmt: skip
    if free:
        try:
            insert_rows(s, K, free)
        except IntegrityError:
            raise Raced("a resource with one of these identifiers was created meanwhile") from None
    for key in keys:
        if key in owners:
            _take_over(s, key, owners[key], claims[key])


def _take_over(s: Session, key: Key, owner: str, rid: str) -> None:
    """A claim already held: stale (its resource dropped the identifier) → move it to `rid`;
    held by a resource that still carries it (committed after our lookup) → Raced."""
    rtype, muni, system, value = key
    where = (
        K.c.resource_type == rtype,
        K.c.municipality == muni,
        K.c.system == system,
        K.c.value == value,
    )
    still = s.scalar(
        select(T.c.resource_id).where(
            T.c.resource_type == rtype,
            T.c.resource_id == owner,
            T.c.param == "identifier",
            T.c.system == system,
            T.c.code == value,
        )
    )
    if still is None:
        done = s.execute(update(K).where(*where, K.c.resource_id == owner).values(resource_id=rid))
        if done.rowcount == 1:
            return
    raise Raced(f"{rtype} with this identifier was created meanwhile")
