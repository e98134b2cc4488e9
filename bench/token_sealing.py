"""What sealing an access token to the resource server's own key costs, against the shared-key
seal it replaces (in one process, no network).

    .venv/bin/python bench/token_sealing.py [--seconds 2]

Per operation, median of repeated batches: sealing at the IdP (ECDH-ES+A256KW: one ephemeral
P-256 key and one ECDH; `dir`: AES-GCM only), opening at the resource server, the IdP re-opening
its own token (introspection), and the whole verification of a sealed ES256 access token
(`AccessTokenVerifier.verify`: decrypt + signature + claims). The load average is printed
because a busy machine lowers the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from phr_core import sealing
from phr_core.tokens import AccessTokenVerifier, JwksCache, access_token_cipher, seal, unseal


class _Keys(JwksCache):
    def __init__(self, keys: KeySet) -> None:
        super().__init__("")
        self._set = keys

    def keys(self, kid: str | None) -> KeySet:
        return self._set


def _per_op(fn: Callable[[], object], seconds: float) -> float:
    """Median microseconds per call over batches filling `seconds`."""
    fn()
    batches: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(50):
            fn()
        batches.append((time.perf_counter() - t0) / 50 * 1e6)
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()

    signing = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    now = int(time.time())
    claims = {
        "iss": "https://idp.example.jp",
        "aud": "https://fhir.example.jp",
        "sub": "x" * 43,
        "client_id": "app",
        "scope": "patient/Immunization.rs",
        "grant_id": "g" * 22,
        "iat": now,
        "exp": now + 300,
        "jti": "j" * 22,
    }
    signed = jwt.encode({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}, claims, signing)
    shared = access_token_cipher("shared-" + "s" * 40)
    own = sealing.decryption_key("own-" + "o" * 40)
    jwk = sealing.public_jwk(own)
    sender = sealing.sender_secret("shared-" + "s" * 40)
    by_key = sealing.seal_to(signed, jwk, sender)
    by_shared = seal(signed, shared)
    verifier = AccessTokenVerifier(
        claims["iss"], claims["aud"], _Keys(KeySet([signing])), (shared, own)
    )

    rows = [
        ("seal, own key (ECDH-ES+A256KW)", lambda: sealing.seal_to(signed, jwk, sender)),
        ("seal, shared key (dir)", lambda: seal(signed, shared)),
        ("open at the server, own key", lambda: unseal(by_key, (shared, own))),
        ("open at the server, shared key", lambda: unseal(by_shared, (shared, own))),
        ("re-open at the IdP (introspection)", lambda: sealing.open_as_sender(by_key, sender)),
        ("verify sealed token, own key", lambda: verifier.verify(by_key)),
        ("verify sealed token, shared key", lambda: verifier.verify(by_shared)),
    ]
    print(f"load average {os.getloadavg()[0]:.2f} (a shared machine lowers the figures)")
    for name, fn in rows:
        print(f"{name:38s} {_per_op(fn, args.seconds):8.1f} µs")


if __name__ == "__main__":
    main()
