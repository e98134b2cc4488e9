"""Card verifications per second on one core, with a warm OCSP cache.

Each verification is the full library call an IdP makes per card response
(`CardVerifier.verify`): parse the DER certificate, self-signed check, chain to the trusted
root (issuing CA signature over the certificate), validity, key usage and certificate type,
the RSASSA-PKCS1-v1_5/SHA-256 signature over the session bytes, and the OCSP status from the
cache (the first call asks the real development responder on loopback over HTTP).

    .venv/bin/python bench/card_verify.py [--seconds 5] [--cards 50]
    .venv/bin/python bench/card_verify.py --path reader [--seconds 5]   (bench/card_reader.py)
    .venv/bin/python bench/card_verify.py --path broker [--seconds 5]   (bench/card_broker.py)

Two passes: every check on every call (only OCSP answers cached), then with the verifier's
per-certificate cache (parse, chain signature, key usage, type: what depends only on the
certificate's bytes). Prints verifications per second, the per-verification time, the peak
Python heap (tracemalloc, in a separate untimed pass), the process's peak RSS (`resource`) and
the load average, since a busy machine lowers the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from werkzeug.serving import make_server

from idp.authority_sim.app import create_app
from idp.authority_sim.ca import init_authority
from idp.card.profile import AUTH, BasicAttributes, signed_data
from idp.card.verify import CardVerifier, RevocationChecker, TrustStore
from phr_core.config import load_settings


def _loop(verifier: CardVerifier, work: list, seconds: float) -> tuple[int, float, float]:
    """(verifications, wall seconds, CPU seconds of this process)."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for der, sig, data in work:
            verifier.verify(der, sig, data, AUTH)
        n += len(work)
        if time.perf_counter() >= deadline:
            return n, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--cards", type=int, default=50, help="distinct cards in the mix")
    parser.add_argument(
        "--path",
        choices=("verifier", "reader", "broker"),
        default="verifier",
        help="verifier: the IdP's checks (default); reader: signatures through pcscd with the "
        "virtual JPKI card (bench/card_reader.py; needs root and the PC/SC stack); broker: "
        "sign-ins through the authentication-app stand-in (bench/card_broker.py)",
    )
    args = parser.parse_args()
    if args.path == "reader":
        from bench.card_reader import run  # needs the PC/SC stack; not for the verifier path

        run(args.seconds)
        return
    if args.path == "broker":
        from bench.card_broker import run as run_broker  # the whole IdP app; not for the others

        run_broker(args.seconds)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request log lines
    tmp = Path(tempfile.mkdtemp(prefix="card-bench-"))
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = load_settings({"PHR_VAR_DIR": str(tmp), "PHR_CARD_AUTHORITY_URL": url})
    authority = init_authority(settings)
    server.app = create_app(settings, authority)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    attrs = BasicAttributes("会津 花子", "1990-04-01", "female", "福島県会津若松市東栄町3-46")
    work = []
    for i in range(args.cards):
        card = authority.issue_card(attrs)
        data = signed_data("https://idp.example.jp", f"session-{i}", f"challenge-{i}")
        der = card.auth_cert.public_bytes(serialization.Encoding.DER)
        work.append((der, card.auth_key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data))

    trust = TrustStore.from_pem_file(authority.root_pem_path, ca_issuer_prefixes=(url + "/",))
    revocation = RevocationChecker(trust.fetch, ocsp_ttl=3600)
    results = []
    for label, cache_size in (
        ("every check on every call, OCSP cached", 0),
        ("plus the per-certificate cache (chain, key usage, type)", 20_000),
    ):
        verifier = CardVerifier(trust, revocation, static_cache_size=cache_size)
        for der, sig, data in work:  # warm: issuing CA fetched once, one OCSP answer per card
            if verifier.verify(der, sig, data, AUTH).revocation_method != "ocsp":
                raise SystemExit("the OCSP responder did not answer")
        n, elapsed, cpu = _loop(verifier, work, args.seconds)
        # Memory in a second, shorter pass: tracemalloc slows every allocation, so it must
        # not run during the timed loop.
        tracemalloc.start()
        _loop(verifier, work, min(1.0, args.seconds))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append((label, n, elapsed, cpu, peak))
    server.shutdown()

    print(f"card verifications on one core, {args.cards} cards, {args.seconds:.0f} s each:")
    for label, n, elapsed, cpu, peak in results:
        rate = n / elapsed
        print(f"  {label}:")
        print(
            f"    {rate:,.0f} verifications/s ({1e6 / rate:.0f} µs each); target >= 5,000/s "
            f"{'met' if rate >= 5000 else 'NOT met'}"
        )
        print(f"    {n / cpu:,.0f} per CPU-second (what one core does when nothing else runs)")
        print(f"    peak Python heap while verifying (tracemalloc): {peak / 1024:.0f} KiB")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak resident set size of the process: {rss_mib:.0f} MiB")
    print(f"  load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
