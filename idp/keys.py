"""Token-signing keys: ES256 (default) and RS256, sealed at rest, rotated without a gap.

Life of a key: `next` (in the JWKS, signs nothing) → `current` (signs) → `retired` (in the JWKS
until every token it signed has expired) → deleted. Verifiers that cache our JWKS therefore
already know a key before the first token signed with it reaches them.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from joserfc.jwk import ECKey, KeySet, KeySetSerialization, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.data_keys import SIGNING_KEYS, DataKeys
from idp.models import SigningKey
from phr_core.db import Database
from phr_core.rotating_aead import RotatingAead

ALGS = ("ES256", "RS256")
DEFAULT_ALG = "ES256"
# Longest lifetime of anything we sign (ID and access tokens), plus clock leeway.
MAX_SIGNED_LIFETIME = timedelta(minutes=15)
# Verifiers may cache our JWKS this long; a `next` key must be published at least this long
# before it becomes `current`.
JWKS_MAX_AGE_S = 300
CACHE_TTL_S = 30.0


class RotationTooSoon(RuntimeError):
    """The waiting key was published too recently for verifiers' caches to know it."""


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    state: str
    key: ECKey | RSAKey


def _sealer(data_key: str) -> RotatingAead:
    """Seals under the newest data key, opens under any (`phr idp rotate-data-key`)."""
    return DataKeys(data_key).aead(SIGNING_KEYS)


def _generate(alg: str) -> ECKey | RSAKey:
    return ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)


def _new_row(alg: str, state: str, data_key: str, now: datetime) -> SigningKey:
    key = _generate(alg)
    kid = f"{alg.lower()}-{now:%Y%m%d}-{secrets.token_hex(4)}"
    public = key.as_dict(private=False)
    public.update(kid=kid, alg=alg, use="sig")
    private = key.as_bytes(private=True)  # PEM (PKCS#8)
    nonce = os.urandom(12)
    sealed = nonce + _sealer(data_key).encrypt(nonce, private, kid.encode())
    return SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=public,
        private_sealed=sealed,
        created_at=now,
        activated_at=now if state == "current" else None,
    )


def ensure_keys(s: Session, data_key: str, now: datetime | None = None) -> None:
    """First start: one current and one waiting key per algorithm."""
    now = now or datetime.now(UTC)
    rows = s.scalars(select(SigningKey)).all()
    for alg in ALGS:
        states = {r.state for r in rows if r.alg == alg}
        if "current" not in states:
            s.add(_new_row(alg, "current", data_key, now))
        if "next" not in states:
            s.add(_new_row(alg, "next", data_key, now))


def rotate(
    s: Session, data_key: str, *, force: bool = False, now: datetime | None = None
) -> list[str]:
    """Promote each waiting key, retire the current one, publish a new waiting key, and drop
    retired keys nothing valid was signed with. Returns the new current key ids."""
    now = now or datetime.now(UTC)
    rows = s.scalars(select(SigningKey)).all()
    promoted: list[str] = []
    for alg in ALGS:
        waiting = next((r for r in rows if r.alg == alg and r.state == "next"), None)
        if waiting is None:
            continue
        age = now - _aware(waiting.created_at)
        if not force and age < timedelta(seconds=JWKS_MAX_AGE_S):
            raise RotationTooSoon(
                f"the waiting {alg} key was published {int(age.total_seconds())} s ago; "
                f"wait until it is {JWKS_MAX_AGE_S} s old (or use --force)"
            )
    for alg in ALGS:
        for r in rows:
            if r.alg == alg and r.state == "current":
                r.state = "retired"
                r.retire_after = now + MAX_SIGNED_LIFETIME
            elif r.alg == alg and r.state == "next":
                r.state = "current"
                r.activated_at = now
                promoted.append(r.kid)
        s.add(_new_row(alg, "next", data_key, now))
    for r in rows:
        if r.state == "retired" and r.retire_after and _aware(r.retire_after) < now:
            s.delete(r)
    return promoted


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class KeyRing:
    """The keys as this process sees them, reloaded every few seconds so a rotation done by
    `phr idp rotate-keys` (another process) is picked up by every worker."""

    def __init__(self, db: Database, data_key: str | Callable[[], str]) -> None:
        self._db = db
        # A callable is read at every reload, so a rotated data key is picked up without a
        # restart (the re-seal pass may have moved the keys under the new one).
        self._data_key = data_key if callable(data_key) else (lambda: data_key)
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._keys: list[LoadedKey] = []
        self._jwks: dict = {"keys": []}
        self._verify = KeySet([])

    def _load(self) -> None:
        with self._db.session() as s:
            rows = s.scalars(select(SigningKey)).all()
        now = datetime.now(UTC)
        keys: list[LoadedKey] = []
        public: list[dict] = []
        # A key's private part never changes under its kid: keep the ones already imported
        # (importing an RSA key checks it, a quarter of a second of CPU on this machine).
        known = {k.kid: k.key for k in self._keys}
        for r in rows:
            if r.state == "retired" and r.retire_after and _aware(r.retire_after) < now:
                continue
            key = known.get(r.kid) or self._import(r)
            keys.append(LoadedKey(r.kid, r.alg, r.state, key))
            public.append(dict(r.public_jwk))
        self._keys = keys
        jwks = {"keys": sorted(public, key=lambda k: k["kid"])}
        if jwks != self._jwks:
            self._jwks = jwks
            # The public JWKs as stored when each key was made (idp_signing_key.public_jwk).
            self._verify = KeySet.import_key_set(cast(KeySetSerialization, jwks))

    def _import(self, r: SigningKey) -> ECKey | RSAKey:
        pem = _sealer(self._data_key()).decrypt(
            r.private_sealed[:12], r.private_sealed[12:], r.kid.encode()
        )
        cls = ECKey if r.alg == "ES256" else RSAKey
        return cls.import_key(pem)

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > CACHE_TTL_S:
            with self._lock:
                if time.monotonic() - self._loaded_at > CACHE_TTL_S:
                    self._load()
                    self._loaded_at = time.monotonic()

    def refresh(self) -> None:
        """Forget the cache (after a rotation in this process)."""
        self._loaded_at = 0.0

    def signing_key(self, alg: str = DEFAULT_ALG) -> LoadedKey:
        self._fresh()
        for k in self._keys:
            if k.alg == alg and k.state == "current":
                return k
        raise RuntimeError(
            f"no current {alg} signing key: start the IdP with `phr idp serve` or "
            "`phr dev run`, which create the keys"
        )

    def jwks(self) -> dict:
        self._fresh()
        return self._jwks

    def verification_keys(self) -> KeySet:
        self._fresh()
        return self._verify

    def key_for(self, kid: str) -> LoadedKey | None:
        self._fresh()
        return next((k for k in self._keys if k.kid == kid), None)
