"""Rotating the city's pseudonym key without breaking links (issue 20).

A resident's pseudonymous code is what their consent links (consent service) and PHR records
(PHR server, identifiers and references) are filed under, in services outside the connector.
Re-coding everyone would mean rewriting all of those in one coordinated migration; instead a
rotation keeps every existing link as it is:

* the new key goes in front of PHR_CONNECTOR_PSEUDONYM_KEY, the old ones stay (for lookup);
* every resident of the current register is remembered in `connector_kept_pseudonym` under
  their code with the new key, with the id of the key their code is made with now;
* from then on such a resident keeps their code; a resident who was not in the register
  (born or moved in later) gets a code under the new key.

Recording the register under the new key is the rotation's re-key pass: afterwards every
resident it held is found by the new key, and their records loaded before and after are one
Patient at the PHR server (tests/connectors/test_pseudonym_rotation_phr.py). A leaked old key
still yields the codes of residents known at the rotation: what the rotation protects is
everyone after it. Re-coding existing residents would change their Patient ids (derived from
the code) and so needs an offline migration of every service; why it is not built is in
docs/operations.md ("Key rotation").
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from connectors import register
from connectors.models import KeptPseudonym
from connectors.pseudonym import Pseudonymizer, key_id, parse_keys
from phr_core import key_rotation
from phr_core.config import ConfigError, Settings
from phr_core.db import Database

VARIABLE = "PHR_CONNECTOR_PSEUDONYM_KEY"
_BATCH = 5000


def _municipality(settings: Settings) -> str:
    return settings.option("PHR_CONNECTOR_MUNICIPALITY")


def kept(db: Database, municipality: str) -> dict[str, dict[str, str]]:
    """Per rotation (the key id it put in front): a resident's code under that key → the key
    id their code stays made with."""
    out: dict[str, dict[str, str]] = {}
    with db.session() as s:
        rows = s.execute(
            select(KeptPseudonym.lookup_key, KeptPseudonym.lookup, KeptPseudonym.key_id).where(
                KeptPseudonym.municipality_code == municipality
            )
        )
        for lookup_key, lookup, key in rows:
            out.setdefault(lookup_key, {})[lookup] = key
    return out


def pseudonymizer(settings: Settings, db: Database | None) -> Pseudonymizer:
    """The city's pseudonymizer as every connector command must use it: after a rotation,
    the residents known then keep their codes (read from the connector's database)."""
    secret = settings.secret(VARIABLE)
    try:
        keys = parse_keys(secret)
    except ValueError as exc:
        raise ConfigError(f"{VARIABLE}: {exc}") from None
    if len(keys) == 1 or db is None:
        return Pseudonymizer(secret)
    return Pseudonymizer(secret, kept(db, _municipality(settings)))


def for_settings(settings: Settings) -> Pseudonymizer:
    """`pseudonymizer` with the connector's own database (opened and closed here)."""
    db = Database(settings.database_urls["connector"])
    try:
        return pseudonymizer(settings, db)
    finally:
        db.dispose()


def remember_residents(
    db: Database, municipality: str, register_path: Path, current: Pseudonymizer, new_key: str
) -> int:
    """Record every resident of the register as keeping the code `current` gives them, looked
    up under `new_key`; returns how many. Earlier rotations' records stay: a resident missing
    from this register (moved out for a while, a partial extract) is still known by them."""
    new_id = key_id(parse_keys(new_key)[0])
    under_new = Pseudonymizer(new_key)
    rows: dict[str, str] = {}
    for resident in register.read(register_path):
        rows[under_new.code(resident.number)] = current.key_id_of(resident.number)
    if not rows:
        raise ConfigError(f"{register_path} holds no residents: nobody would keep their code")
    with db.session() as s:
        items = [
            {"municipality_code": municipality, "lookup_key": new_id, "lookup": k, "key_id": v}
            for k, v in rows.items()
        ]
        for start in range(0, len(items), _BATCH):
            s.execute(insert(KeptPseudonym), items[start : start + _BATCH])
    return len(rows)


def rotate(settings: Settings, register_path: Path) -> tuple[int, Path, int]:
    """A new key in front of the secret, every resident of the register keeping their code
    (recorded first, so no run ever sees the new key without them). Returns how many
    residents, the secret's file and how many keys it holds."""
    db = Database(settings.database_urls["connector"])
    try:
        # One rotation at a time: two at once would each record residents under their own new
        # key, and the key left in front could find nobody recorded under it (every code of
        # a resident known only to the other one would change).
        with key_rotation.locked(key_rotation.secret_file(settings, VARIABLE)):
            current = pseudonymizer(settings, db)
            entry = key_rotation.fresh_secret(settings)
            n = remember_residents(db, _municipality(settings), register_path, current, entry)
            path, entries = key_rotation.prepend(settings, VARIABLE, entry)
    finally:
        db.dispose()
    return n, path, len(entries)
