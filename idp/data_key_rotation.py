"""Rotating PHR_IDP_DATA_KEY while the IdP serves (`phr idp rotate-data-key`).

1. A new key goes in front of the secret (phr_core.key_rotation): running workers seal and
   index under it from their next request on, and still open and find what the older keys made
   (idp.data_keys).
2. After the overlap (enrollment codes live 15 minutes), `--retire` runs the re-seal pass and
   then drops the older keys. The pass works in small batches, each its own short transaction,
   and writes a row only if it still holds what the pass read (a compare-and-set), so a sign-in
   storing new attributes at the same moment wins and nothing waits on a long lock. The keys of
   the stable identifiers (passkey user handles, certificate bindings, auth-app subjects) stay
   in the secret as one derived entry, never the old key itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.card import lookup
from idp.card.models import CardAttributes, PersonLookup
from idp.card.profile import BasicAttributes
from idp.data_keys import CARD_ATTRIBUTES, SIGNING_KEYS, DataKeys
from idp.models import SigningKey
from idp.orm import rowcount
from phr_core import key_rotation
from phr_core.config import ConfigError, Settings
from phr_core.db import Database
from phr_core.rotating_aead import RotatingAead

VARIABLE = "PHR_IDP_DATA_KEY"
OVERLAP_S = 20 * 60.0  # enrollment codes (15 min) made under the old key, plus leeway
BATCH = 200


@dataclass
class Resealed:
    signing_keys: int = 0
    attributes: int = 0
    reindexed: int = 0
    unreadable: int = 0  # sealed under no key of the secret: the pass cannot move them

    def line(self) -> str:
        return (
            f"re-sealed {self.signing_keys} signing key(s) and {self.attributes} person(s)' "
            f"card attributes, re-indexed {self.reindexed}; unreadable: {self.unreadable}"
        )


def _reseal_blob(aead: RotatingAead, blob: bytes, aad: bytes, head: bytes) -> bytes | None:
    """`blob` (`head` + nonce + ciphertext) sealed again under the newest key; None when the
    newest key already sealed it. InvalidTag when no key opens it."""
    nonce, body = blob[len(head) : len(head) + 12], blob[len(head) + 12 :]
    plain, index = aead.decrypt_with_index(nonce, body, aad)
    return None if index == 0 else _sealed(aead, plain, aad, head)


def _sealed(aead: RotatingAead, plain: bytes, aad: bytes, head: bytes) -> bytes:
    """`plain` sealed under the newest key, as `head` + nonce + ciphertext."""
    fresh = os.urandom(12)
    return head + fresh + aead.encrypt(fresh, plain, aad)


def reseal(db: Database, secret: str, batch: int = BATCH) -> Resealed:
    """Move everything the older keys of `secret` sealed or indexed under its newest key."""
    keys = DataKeys(secret)
    done = Resealed()
    signing = keys.aead(SIGNING_KEYS)
    with db.session() as s:
        for row in s.scalars(select(SigningKey)).all():
            try:
                fresh = _reseal_blob(signing, row.private_sealed, row.kid.encode(), b"")
            except InvalidTag:
                done.unreadable += 1
                continue
            if fresh is not None:
                done.signing_keys += rowcount(
                    s.execute(
                        update(SigningKey)
                        .where(
                            SigningKey.kid == row.kid,
                            SigningKey.private_sealed == row.private_sealed,  # as read
                        )
                        .values(private_sealed=fresh)
                        .execution_options(synchronize_session=False)
                    )
                )
    attributes = keys.aead(CARD_ATTRIBUTES)
    after = ""
    while True:
        with db.session() as s:
            rows = s.scalars(
                select(CardAttributes)
                .where(CardAttributes.person_id > after)
                .order_by(CardAttributes.person_id)
                .limit(batch)
            ).all()
            if not rows:
                return done
            after = rows[-1].person_id
            for person in rows:
                _reseal_person(s, keys, attributes, person, done)


def _reseal_person(
    s: Session, keys: DataKeys, aead: RotatingAead, row: CardAttributes, done: Resealed
) -> None:
    aad = row.person_id.encode()
    try:
        plain, index = aead.decrypt_with_index(row.sealed[1:13], row.sealed[13:], aad)
    except InvalidTag:
        done.unreadable += 1
        return
    if index != 0:  # opened above already: sealed again without a second decryption
        fresh = _sealed(aead, plain, aad, row.sealed[:1])
        done.attributes += rowcount(
            s.execute(
                update(CardAttributes)
                .where(
                    CardAttributes.person_id == row.person_id,
                    CardAttributes.sealed == row.sealed,  # a sign-in storing new ones wins
                )
                .values(sealed=fresh)
                .execution_options(synchronize_session=False)
            )
        )
    attrs = BasicAttributes(**json.loads(plain))
    wanted = lookup.lookup_key(keys.entries[0], attrs.name, attrs.birthdate)
    index_row = s.get(PersonLookup, row.person_id)
    if index_row is None or index_row.lookup_key != wanted:
        lookup.index_person(s, keys.entries[0], row.person_id, attrs)
        done.reindexed += 1


def rotate(settings: Settings) -> str:
    """Step 1: a new key in front of the secret."""
    path, entries = key_rotation.prepend(settings, VARIABLE)
    held = len(DataKeys(" ".join(entries)).entries)
    return (
        f"{VARIABLE}: new key in front in {path} ({held} keys held); running IdP workers seal "
        f"under it from now on. After {int(OVERLAP_S // 60)} minutes run "
        "`phr idp rotate-data-key --retire` (it re-seals, then drops the older keys)"
    )


def retire(settings: Settings, db: Database, *, force: bool) -> str:
    """Step 2: the re-seal pass, then only the newest key (and the identifier keys) kept."""
    path = key_rotation.secret_file(settings, VARIABLE)
    with key_rotation.locked(path):
        current = key_rotation.read(path)
        keys = DataKeys(current)
        if not keys.has_older():
            return f"{VARIABLE}: one key held in {path}, nothing to retire"
        key_rotation.require_overlap(VARIABLE, path, OVERLAP_S, force, "enrollment codes")
        done = reseal(db, current)
        if done.unreadable:
            raise ConfigError(
                f"{VARIABLE}: {done.unreadable} sealed row(s) open under no key held; nothing "
                "retired (restore the key that sealed them, or remove those rows)"
            )
        kept = f"{keys.entries[0]} {keys.pinned_entry()}"
        key_rotation.replace(path, kept)
    return f"{done.line()}\n{VARIABLE}: retired {len(keys.entries) - 1} older key(s) in {path}"
