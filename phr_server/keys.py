"""Key rotation without downtime (`phr fhir rotate-keys`).

1. Re-wrap: every data key not wrapped under the newest master key (the first secret in
   PHR_FHIR_DATA_KEY) is unwrapped with whichever listed master key wrapped it and wrapped
   again under the newest. The data keys themselves do not change, so running servers keep
   reading and writing; once this is done the old master secret can be dropped from the list.
2. `new_data_keys`: start a fresh data key per municipality; new writes use it, older keys
   stay readable (marked inactive).
3. `reseal`: re-encrypt every stored version whose key is not its municipality's newest one
   (and format-1 rows from before envelope encryption, which also get their index rows), in
   small batches, each row guarded by its version so a concurrent write wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update

from phr_core.db import Database
from phr_server.models import DataKey, ResourceVersion, StoredResource, table_of
from phr_server.repository import Repository
from phr_server.storage import PLATFORM_SCOPE, Keyring, canonical

R = table_of(StoredResource)
V = table_of(ResourceVersion)
BATCH = 200


@dataclass
class Rotation:
    rewrapped: int = 0
    new_keys: int = 0
    resealed: int = 0


def rotate(db: Database, keyring: Keyring, new_data_keys: bool, reseal: bool) -> Rotation:
    out = Rotation()
    masters = keyring.masters
    with db.session() as s:
        for dk in s.scalars(select(DataKey).where(DataKey.master_kid != masters.current_kid)):
            dek = masters.unwrap(dk.master_kid, bytes(dk.wrapped), dk.scope)
            dk.master_kid, dk.wrapped = masters.wrap(dek, dk.scope)
            out.rewrapped += 1
    if new_data_keys:
        with db.session() as s:
            scopes = set(s.scalars(select(DataKey.scope).distinct()))
            for scope in sorted(scopes):
                s.execute(update(DataKey).where(DataKey.scope == scope).values(active=False))
                keyring.new_key(s, scope)
                out.new_keys += 1
        keyring.forget()
    if reseal:
        out.resealed = _reseal(db, keyring)
    return out


def _reseal(db: Database, keyring: Keyring) -> int:
    done = 0
    while True:
        with db.session() as s:
            current = {}
            for scope in set(s.scalars(select(R.c.municipality).distinct())) | {PLATFORM_SCOPE}:
                current[scope or PLATFORM_SCOPE] = keyring.current(s, scope or PLATFORM_SCOPE)
            stale = or_(
                R.c.key_id.is_(None),
                *(
                    and_(
                        or_(R.c.municipality == scope, R.c.municipality.is_(None))
                        if scope == PLATFORM_SCOPE
                        else R.c.municipality == scope,
                        R.c.key_id != key_id,
                    )
                    for scope, key_id in current.items()
                ),
            )
            rows = list(s.execute(select(R).where(stale).limit(BATCH)))
            if not rows:
                return done
            repo = Repository(keyring, b"")
            for row in rows:
                scope = row.municipality or PLATFORM_SCOPE
                key_id = current[scope]
                if row.key_id is None:  # format 1: also give it its index rows
                    body = keyring.open(
                        s, None, row.resource_type, row.id, row.version_id, row.body
                    )
                    prev = s.get(StoredResource, (row.resource_type, row.id))
                    resource = json.loads(body)
                    repo.put(s, resource, scope, prev)
                    done += 1
                    continue
                versions = list(
                    s.execute(
                        select(V).where(V.c.resource_type == row.resource_type, V.c.id == row.id)
                    )
                )
                if not any(v.version_id == row.version_id for v in versions):
                    # no version rows (AuditEvents, repository.UNVERSIONED): the row itself
                    plain = keyring.open(
                        s, row.key_id, row.resource_type, row.id, row.version_id, row.body
                    )
                    sealed = keyring.seal(
                        s, key_id, row.resource_type, row.id, row.version_id, plain
                    )
                    mac = keyring.content_mac(s, key_id, canonical(json.loads(plain)))
                    s.execute(
                        update(R)
                        .where(
                            R.c.resource_type == row.resource_type,
                            R.c.id == row.id,
                            R.c.version_id == row.version_id,
                        )
                        .values(body=sealed, key_id=key_id, content_mac=mac)
                    )
                for ver in versions:
                    if ver.key_id == key_id:
                        continue
                    plain = keyring.open(
                        s, ver.key_id, ver.resource_type, ver.id, ver.version_id, ver.body
                    )
                    sealed = keyring.seal(
                        s, key_id, ver.resource_type, ver.id, ver.version_id, plain
                    )
                    s.execute(
                        update(V)
                        .where(
                            V.c.resource_type == ver.resource_type,
                            V.c.id == ver.id,
                            V.c.version_id == ver.version_id,
                        )
                        .values(body=sealed, key_id=key_id)
                    )
                    if ver.version_id == row.version_id:
                        mac = keyring.content_mac(s, key_id, canonical(json.loads(plain)))
                        s.execute(
                            update(R)
                            .where(
                                R.c.resource_type == row.resource_type,
                                R.c.id == row.id,
                                R.c.version_id == row.version_id,
                            )
                            .values(body=sealed, key_id=key_id, content_mac=mac)
                        )
                done += 1
