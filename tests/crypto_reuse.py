"""RSA keys and client-secret hashes for tests, made once per worker and used again in each
test: the slowest cryptography the suite repeats, kept real.

RSA keys. A 2048-bit RSA key costs a tenth of a second to make (several times that on a loaded
2-core machine), and most IdP, card and portal tests make several: the IdP's signing keys, the
card authority's root and issuing CA, each card's two keys. The pool hands each test the same
keys in the same order (distinct from one another within the test, as freshly made ones are) and
makes a key only when a test asks for more than any test before it. A key asked for while a
fixture broader than one test (session, package, module, class) is set up is made afresh and
never handed out again, so no test meets the key of a fixture it shares with other tests. They
are real RSA keys from `cryptography`; only when they are made changes. tests/conftest.py
installs the pool for the whole session (`rsa.generate_private_key`, which the card authority
calls, and joserfc's `RSAKey.generate_key`, which the IdP calls); processes a test starts make
their own keys.

Client secrets. `idp.clients.hash_secret` runs scrypt with its production parameters (16 MiB,
tens of milliseconds, far more on a loaded machine), and every test that serves the platform
stores the demo clients' secrets again. `SecretHashes` makes each secret's hash once per worker
and gives the same stored value again; it verifies as any other (same format and parameters,
its own salt), and a secret seen verified once is then not hashed again by idp.clients' own
memo, as in a long-running IdP. A wrong secret is always checked with scrypt, and a secret
registered at run time (a new random one each time) is hashed with scrypt each time.

Development client secrets. Those hashes only help when a secret comes again, and each test's
var/ dir made its own random demo client secrets (`phr_core.secrets.ensure_dev_secret`), so
every demo load ran scrypt three times (about a third of a second; several times that on a
loaded machine). `DevSecretPool` hands the client secrets of each test out as the RSA pool
hands keys: the same ones in the same order in every test, distinct from one another within a
test, fresh and never handed out again while a shared fixture is set up. The file is written by
`ensure_dev_secret` itself; only the random value it draws comes from the pool. Processes a test
starts (`phr dev run`) draw their own.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

Generate = Callable[..., rsa.RSAPrivateKey]


class RsaKeyPool:
    def __init__(self, generate: Generate) -> None:
        self._generate = generate
        self._keys: dict[tuple[int, int], list[rsa.RSAPrivateKey]] = {}
        self._next: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self.shared_setup = 0  # > 0 while a fixture broader than one test is being set up

    def new_test(self) -> None:
        """The next test starts again with the pool's first key."""
        with self._lock:
            self._next.clear()

    def generate_private_key(
        self, public_exponent: int, key_size: int, backend: object = None
    ) -> rsa.RSAPrivateKey:
        """`rsa.generate_private_key`'s signature: the test's next key of this size."""
        if self.shared_setup:
            return self._generate(public_exponent=public_exponent, key_size=key_size)
        kind = (public_exponent, key_size)
        with self._lock:
            keys = self._keys.setdefault(kind, [])
            i = self._next.get(kind, 0)
            self._next[kind] = i + 1
            if i < len(keys):
                return keys[i]
        key = self._generate(public_exponent=public_exponent, key_size=key_size)
        with self._lock:
            if len(keys) == i:  # another thread of this test may be making the key before
                keys.append(key)
        return key

    def generate_for_joserfc(self, size: int) -> rsa.RSAPrivateKey:
        """joserfc's `RSAKey.binding.generate_private_key(size)`."""
        return self.generate_private_key(65537, size)


class SecretHashes:
    """`idp.clients.hash_secret`, once per secret."""

    def __init__(self, hash_secret: Callable[[str], str]) -> None:
        self._hash_secret = hash_secret
        self._made: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, secret: str) -> str:
        with self._lock:
            made = self._made.get(secret)
        if made is None:
            made = self._made.setdefault(secret, self._hash_secret(secret))
        return made


class DevSecretPool:
    """`phr_core.secrets.ensure_dev_secret` with the client secrets (names ending in one of
    `suffixes`) drawn from a pool per test; `keys` tells when a shared fixture is set up."""

    def __init__(self, module: Any, keys: RsaKeyPool, suffixes: tuple[str, ...]) -> None:
        self._ensure: Callable[[Path, str], str] = module.ensure_dev_secret
        self._keys = keys
        self._suffixes = suffixes
        self._values: dict[str, list[str]] = {}
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()
        self._queued = threading.local()  # the value the next token_urlsafe call returns
        module._random = self  # the module's `secrets`: only token_urlsafe is used there
        module.ensure_dev_secret = self.ensure_dev_secret

    def new_test(self) -> None:
        with self._lock:
            self._next.clear()

    def token_urlsafe(self, nbytes: int) -> str:
        value: str | None = getattr(self._queued, "value", None)
        self._queued.value = None
        return value or secrets.token_urlsafe(nbytes)

    def ensure_dev_secret(self, secrets_dir: Path, name: str) -> str:
        if (
            not name.endswith(self._suffixes)
            or self._keys.shared_setup
            or (secrets_dir / name).exists()
        ):
            return self._ensure(secrets_dir, name)
        with self._lock:
            values = self._values.setdefault(name, [])
            i = self._next.get(name, 0)
            self._next[name] = i + 1
            if i == len(values):
                values.append(secrets.token_urlsafe(48))
            self._queued.value = values[i]
        try:
            return self._ensure(secrets_dir, name)
        finally:
            self._queued.value = None
