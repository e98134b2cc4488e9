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

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phr_server.bulk import insert_rows
from phr_server.models import IdentifierClaim, TokenIndex, rowcount, table_of

K = table_of(IdentifierClaim)
T = table_of(TokenIndex)


class Raced(Exception):
    """Another transaction claimed the same identifier first: run this one again."""


Key = tuple[str, str, str, str]  # resource type, municipality, system, value


BATCH = 500  # keys per lookup statement


def claim(s: Session, claims: dict[Key, str]) -> None:
    """Claim each identifier for the resource id it maps to, or raise Raced. Keys are taken in
    sorted order so that two transactions claiming overlapping sets cannot deadlock.

    A bulk load claims hundreds of identifiers per Bundle. On PostgreSQL the free ones are
    inserted in one statement (INSERT … ON CONFLICT DO NOTHING RETURNING) and only the keys it
    did not insert are looked up; elsewhere the owners are looked up a batch at a time and the
    free ones inserted with one executemany. Taken keys (rare: a race, or a stale claim) are
    handled one by one."""
    keys = sorted(claims)
    if s.get_bind().dialect.name == "postgresql":
        taken = _insert_free(s, keys, claims)
        owners = _owners(s, taken)
        for key in taken:
            if key not in owners:  # its holder went away meanwhile: run the whole thing again
                raise Raced("an identifier claim changed meanwhile")
            _take_over(s, key, owners[key], claims[key])
        return
    owners = _owners(s, keys)
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


# PostgreSQL: every free identifier claimed in one statement, in key order; the keys already
# held come back missing from RETURNING (a concurrent claim not yet committed is waited for).
_PG_CLAIM = text(
    """
INSERT INTO fhir_identifier_claim (resource_type, municipality, system, value, resource_id)
SELECT * FROM unnest(CAST(:t AS varchar[]), CAST(:m AS varchar[]), CAST(:s AS varchar[]),
                     CAST(:v AS varchar[]), CAST(:r AS varchar[]))
ON CONFLICT DO NOTHING
RETURNING resource_type, municipality, system, value
"""
)


def _insert_free(s: Session, keys: list[Key], claims: dict[Key, str]) -> list[Key]:
    """Claim the free keys (PostgreSQL); the keys someone else holds."""
    done: set[Key] = set()
    for i in range(0, len(keys), BATCH * 4):
        chunk = keys[i : i + BATCH * 4]
        rows = s.execute(
            _PG_CLAIM,
            {
                "t": [k[0] for k in chunk],
                "m": [k[1] for k in chunk],
                "s": [k[2] for k in chunk],
                "v": [k[3] for k in chunk],
                "r": [claims[k] for k in chunk],
            },
        )
        done.update((r[0], r[1], r[2], r[3]) for r in rows)
    return [k for k in keys if k not in done]


def _owners(s: Session, keys: list[Key]) -> dict[Key, str]:
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
    return owners


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
        if rowcount(done) == 1:
            return
    raise Raced(f"{rtype} with this identifier was created meanwhile")
