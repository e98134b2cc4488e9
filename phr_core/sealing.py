"""Access tokens sealed to one resource server's own public key (JWE ECDH-ES+A256KW, A256GCM),
so that no secret is shared between an IdP and the resource servers it issues tokens for.

Each resource server (PHR server, consent API) has a P-256 decryption key
(`PHR_<SERVICE>_TOKEN_DECRYPTION_KEY`) and publishes its public half, `use: enc`, in the
`oauth_resource` metadata of its federation entity configuration. An IdP seals a token for
audience X to X's key, so the app holding the token cannot read the PHR-sector subject and
server A cannot open a token meant for server B.

The IdP must still open the tokens it issued (introspection, revocation, userinfo) without
the resource server's private key: it derives the content-encryption key from its own secret
and the token's ephemeral public key (`CEK = HMAC(secret, epk)`), wraps it for the recipient as
usual, and later recomputes it. The recipient learns that one CEK, which reveals nothing about
the secret and lets it forge nothing (the signed JWT inside is still checked).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from joserfc.jwk import ECKey, OctKey

from phr_core.config import ConfigError, Settings
from phr_core.secrets import derive_key
from phr_core.tokens import access_token_ciphers

log = logging.getLogger(__name__)

ALG = "ECDH-ES+A256KW"
ENC = "A256GCM"
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def _one_key(secret: str) -> ECKey:
    if secret.startswith("{"):
        key = ECKey.import_key(json.loads(secret))
        if not key.is_private:
            raise ValueError("a token decryption key must be a private JWK")
    else:
        material = int.from_bytes(derive_key(secret, "phr/token-decryption-key/v1", 48), "big")
        key = ECKey.import_key(
            ec.derive_private_key(material % (_P256_ORDER - 1) + 1, ec.SECP256R1())
        )
    key.ensure_kid()
    return key


def decryption_keys(secret: str) -> tuple[ECKey, ...]:
    """A resource server's token decryption keys, newest first: a private EC JWK as JSON, or
    long random strings separated by spaces, each deriving a P-256 key (so development keys and
    production checks work as for others). The newest is the one published first, which IdPs
    seal to; the others still open the tokens sealed to them before a rotation."""
    text = secret.strip()
    if text.startswith("{"):
        return (_one_key(text),)
    found = tuple(_one_key(part) for part in text.split())
    if not found:
        raise ValueError("no key")
    return found


def decryption_key(secret: str) -> ECKey:
    """The newest of the secret's decryption keys (the one IdPs seal to)."""
    return decryption_keys(secret)[0]


def public_jwk(key: ECKey) -> dict[str, Any]:
    """The public half as published in `oauth_resource.jwks`."""
    out: dict[str, Any] = dict(key.as_dict(private=False))
    out.update(kid=key.kid, use="enc", alg=ALG)
    return out


def encryption_jwk(jwks: object) -> dict[str, Any] | None:
    """The first P-256 `use: enc` key of a JWK Set fit for ECDH-ES+A256KW, else None."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for jwk in keys if isinstance(keys, list) else []:
        if (
            isinstance(jwk, dict)
            and jwk.get("kty") == "EC"
            and jwk.get("crv") == "P-256"
            and jwk.get("use", "enc") == "enc"
            and jwk.get("alg", ALG) == ALG
            and isinstance(jwk.get("x"), str)
            and isinstance(jwk.get("y"), str)
        ):
            return jwk
    return None


def sender_secrets(secret: str) -> tuple[bytes, ...]:
    """The IdP's keys for deriving content-encryption keys, one per PHR_ACCESS_TOKEN_KEY
    secret, newest (the one it seals with) first."""
    return tuple(derive_key(part, "phr/access-token-cek/v1") for part in secret.split())


def sender_secret(secret: str) -> bytes:
    """The IdP's newest key for deriving content-encryption keys."""
    return sender_secrets(secret)[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _coord(n: int) -> str:
    return _b64(n.to_bytes(32, "big"))


def _cek(sender: bytes, epk: dict[str, Any]) -> bytes:
    return hmac.new(sender, f"{epk['x']}.{epk['y']}".encode(), hashlib.sha256).digest()


def _concat_kdf(z: bytes) -> bytes:
    """RFC 7518 4.6.2: Concat KDF (SHA-256) for ECDH-ES+A256KW, no apu/apv."""
    alg = ALG.encode()
    u32 = lambda n: n.to_bytes(4, "big")  # noqa: E731
    other = u32(len(alg)) + alg + u32(0) + u32(0) + u32(256)
    return hashlib.sha256(u32(1) + z + other).digest()


def seal_to(signed: str, recipient: dict[str, Any], sender: bytes) -> str:
    """The signed JWT as a compact JWE for `recipient` (a public EC JWK)."""
    peer = ECKey.import_key(recipient).public_key
    if not isinstance(peer, ec.EllipticCurvePublicKey):
        raise ValueError("the recipient's key is not an EC public key")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    nums = ephemeral.public_key().public_numbers()
    epk = {"kty": "EC", "crv": "P-256", "x": _coord(nums.x), "y": _coord(nums.y)}
    header: dict[str, Any] = {"alg": ALG, "enc": ENC, "cty": "JWT", "typ": "at+jwt", "epk": epk}
    if recipient.get("kid"):
        header["kid"] = recipient["kid"]
    cek = _cek(sender, epk)
    kek = _concat_kdf(ephemeral.exchange(ec.ECDH(), peer))
    protected = _b64(json.dumps(header, separators=(",", ":")).encode())
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, signed.encode(), protected.encode("ascii"))
    wrapped = aes_key_wrap(kek, cek)
    return ".".join((protected, _b64(wrapped), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])))


def is_sealed_to_key(token: str) -> bool:
    """True for a JWE made by `seal_to` (as opposed to one under the shared key)."""
    try:
        return json.loads(_unb64(token.split(".")[0])).get("alg") == ALG
    except (ValueError, AttributeError):
        return False


def open_as_sender(token: str, sender: bytes | tuple[bytes, ...]) -> str:
    """The signed JWT inside a token this IdP sealed with `seal_to` (ValueError otherwise);
    `sender` may be several secrets (during a rotation of PHR_ACCESS_TOKEN_KEY)."""
    for secret in sender if isinstance(sender, tuple) else (sender,):
        try:
            protected, _ek, iv, ct, tag = token.split(".")
            header = json.loads(_unb64(protected))
            cek = _cek(secret, header["epk"])
            plain = AESGCM(cek).decrypt(_unb64(iv), _unb64(ct) + _unb64(tag), protected.encode())
            return plain.decode()
        except Exception:  # noqa: S112  # any failure means "not sealed with this secret"
            continue
    raise ValueError("not a token this issuer sealed")


@functools.lru_cache(maxsize=8)
def _keys_of(secret: str) -> tuple[ECKey, ...]:
    return decryption_keys(secret)


def own_keys(settings: Settings, prefix: str) -> tuple[ECKey, ...]:
    """A resource server's decryption keys from `PHR_<prefix>_TOKEN_DECRYPTION_KEY`, newest
    first (`phr fhir rotate-token-key` puts a new one in front)."""
    name = f"PHR_{prefix}_TOKEN_DECRYPTION_KEY"
    try:
        return _keys_of(settings.secret(name))
    except ValueError as exc:
        raise ConfigError(f"{name} is not a usable key: {exc}") from None


def own_key(settings: Settings, prefix: str) -> ECKey:
    """The newest decryption key of a resource server: the one IdPs seal to."""
    return own_keys(settings, prefix)[0]


def published_jwks(settings: Settings, prefix: str) -> dict[str, Any]:
    """The JWK Set a resource server publishes in its `oauth_resource` metadata: every key it
    still opens tokens with, the newest (which IdPs pick, `encryption_jwk`) first."""
    return {"keys": [public_jwk(k) for k in own_keys(settings, prefix)]}


# After a rotation an IdP may go on sealing to the old key until the trust chain it resolved
# for the server expires (federation statements live an hour), and the last token it sealed
# so lives 5 minutes more: the old key is retired only after this much (plus leeway).
RETIRE_AFTER_S = 3600 + 300 + 300
# How often a running server reads its decryption keys again, so a rotation reaches it
# without a restart (tests set it to 0).
RELOAD_S = 5.0


class OpeningKeys:
    """The keys a resource server opens tokens with: the shared keys (alg dir, from
    PHR_ACCESS_TOKEN_KEY) and its own decryption keys, as the secrets hold them now, read
    again every RELOAD_S. Pass it as an AccessTokenVerifier's `decryption_key`
    (phr_core.tokens.unseal calls it)."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self._held = self._read()  # a bad key fails the start
        self._read_at = time.monotonic()
        self._lock = threading.Lock()

    def _read(self) -> tuple[OctKey | ECKey, ...]:
        shared = access_token_ciphers(self.settings.secret("PHR_ACCESS_TOKEN_KEY"))
        return (*shared, *own_keys(self.settings, self.prefix))

    def __call__(self) -> tuple[OctKey | ECKey, ...]:
        now = time.monotonic()
        if now - self._read_at >= RELOAD_S:
            with self._lock:
                try:
                    self._held = self._read()
                except ConfigError:
                    log.warning("PHR_%s token keys unusable; keeping the keys held", self.prefix)
                self._read_at = now
        return self._held
