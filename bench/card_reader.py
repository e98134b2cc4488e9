"""Reader mode's signatures per second through a real pcscd (bench/card_verify.py --path reader).

A private pcscd with vsmartcard's vpcd driver and the virtual JPKI chip (the stack the tests
use, idp/card/virtual_reader/stack.py), driven by reader mode's own code (idp.card.reader) over
pyscard, so every signature is real APDUs through pcsc-lite: SELECT key EF, COMPUTE DIGITAL
SIGNATURE with the SHA-256 DigestInfo, RSA-2048 on the chip's side. Two passes:

- signatures in one card session (the PIN verified once, as a counter PC signing in several
  people's sessions could not do, but as the card's own throughput);
- whole sign-ins: connect, SELECT the JPKI application, read the 利用者証明用 certificate,
  read the retry counter, VERIFY the PIN, sign, disconnect (reset): what `phr card sign --reader`
  does per person, minus the HTTP.

Every signature is checked against the certificate's public key. Prints rates, the peak Python
heap (tracemalloc, separate untimed pass), the bench process's peak RSS and the virtual card
process's and pcscd's peak RSS (VmHWM), and the load average.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idp.card.profile import AUTH
from idp.card.vcard import VirtualCard
from idp.card.virtual_reader.stack import PcscStack, issue_virtual_card, missing

PIN = "1234"


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _timed(fn: Callable[[int], None], seconds: float) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(n)
        n += 1
    return n, time.perf_counter() - start


def run(seconds: float) -> None:
    reason = missing()
    if reason:
        raise SystemExit(f"virtual PC/SC reader unavailable: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="card-reader-bench-"))
    card_file = issue_virtual_card(tmp, PIN)
    issued_cert = VirtualCard.load(card_file).certificate(AUTH)
    with PcscStack(tmp / "pcsc") as stack:
        stack.insert(card_file)
        # pcsc-lite's client reads the socket name once per process: set it before first use.
        os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket)
        from idp.card.reader.jpki import JpkiCard  # after the socket name is set
        from idp.card.reader.pcsc import PcscTransport

        key = issued_cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)  # noqa: S101 - the stand-in issues RSA keys

        def check(signature: bytes, data: bytes) -> None:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

        results = []
        with PcscTransport() as transport:
            card = JpkiCard(transport)
            card.select_application()
            card.verify_pin(PIN)

            def one_signature(i: int) -> None:
                data = f"phr-card-auth-v1\nhttps://idp\nsession-{i}\nchallenge".encode()
                check(card.sign(data), data)

            results.append(("signatures in one card session", *_timed(one_signature, seconds)))
            tracemalloc.start()
            _timed(one_signature, min(1.0, seconds))
            heap_session = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

        def one_sign_in(i: int) -> None:
            with PcscTransport() as transport:
                card = JpkiCard(transport)
                card.select_application()
                der = card.read_certificate(AUTH)
                if card.tries_left(AUTH) != 3:
                    raise SystemExit("the PIN counter moved")
                card.verify_pin(PIN)
                data = f"phr-card-auth-v1\nhttps://idp\nsign-in-{i}\nchallenge".encode()
                signature = card.sign(data)
            cert_key = x509.load_der_x509_certificate(der).public_key()
            assert isinstance(cert_key, rsa.RSAPublicKey)  # noqa: S101 - as above
            cert_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

        results.append(("whole sign-ins (connect … reset)", *_timed(one_sign_in, seconds)))
        tracemalloc.start()
        _timed(one_sign_in, min(1.0, seconds))
        heap_sign_in = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stack.card is not None and stack.pcscd is not None  # noqa: S101 - started above
        card_rss, pcscd_rss = _peak_rss_kib(stack.card.pid), _peak_rss_kib(stack.pcscd.pid)

    print(f"reader mode through pcscd + vpcd + virtual JPKI chip, {seconds:.0f} s per pass:")
    for (label, n, elapsed), heap in zip(results, (heap_session, heap_sign_in), strict=True):
        print(f"  {label}: {n / elapsed:,.1f}/s ({1000 * elapsed / n:.1f} ms each, n={n})")
        print(f"    peak Python heap in the bench process (tracemalloc): {heap / 1024:.0f} KiB")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  peak RSS: bench process {own:.0f} MiB, virtual card process {card_rss / 1024:.0f} MiB, "
        f"pcscd {pcscd_rss / 1024:.1f} MiB"
    )
    print(f"  load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
