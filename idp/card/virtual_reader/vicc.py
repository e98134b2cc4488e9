"""Put a virtual card into vpcd's virtual reader: `python -m idp.card.virtual_reader.vicc
--port PORT (--card card.json | --not-jpki)`. The process is the card: it connects to vpcd (the
vsmartcard driver inside pcscd) on 127.0.0.1:PORT and answers its APDUs until pcscd goes away
or the process is stopped, which pcscd sees as the card leaving the reader.

Built on vsmartcard's own Python card API (Debian package python3-virtualsmartcard): its
`VirtualICC` speaks vpcd's socket protocol, and a `SmartcardOS` answers the APDUs; ours wraps
the JPKI chip of `chip.py`. Nothing is logged but warnings (never an APDU: a VERIFY carries
a PIN).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from idp.card.virtual_reader.chip import JpkiChip, NotJpkiChip

# Debian installs the package under this directory rather than on Python's path.
DEBIAN_PATH = "/usr/lib/python3/site-packages/virtualsmartcard"


def load_virtualsmartcard() -> Any:
    """vsmartcard's VirtualSmartcard module; ImportError with the package to install."""
    try:
        import virtualsmartcard.VirtualSmartcard as vs  # optional, development only
    except ImportError:
        if DEBIAN_PATH not in sys.path:
            sys.path.append(DEBIAN_PATH)
        try:
            import virtualsmartcard.VirtualSmartcard as vs
        except ImportError as exc:
            raise ImportError(
                f"vsmartcard's Python card API cannot be loaded ({exc}): apt-get install "
                "python3-virtualsmartcard, and pip install -e '.[reader]' for pycryptodome, "
                "which it imports"
            ) from None
    return vs


def run(port: int, chip: JpkiChip | NotJpkiChip) -> None:
    vs = load_virtualsmartcard()

    class ChipOS(vs.SmartcardOS):  # type: ignore[name-defined]  # vsmartcard is untyped
        def getATR(self) -> bytes:
            return chip.atr

        def powerUp(self) -> None:
            chip.reset()

        def reset(self) -> None:
            chip.reset()

        def execute(self, msg: bytes) -> bytes:
            return chip.execute(bytes(msg))

    class ChipICC(vs.VirtualICC):  # type: ignore[name-defined]  # vsmartcard is untyped
        """VirtualICC without its card generator: connect to vpcd and answer with ChipOS."""

        def __init__(self) -> None:
            self.os = ChipOS()
            self.type = "jpki"
            self.host, self.port = "127.0.0.1", port
            self.server_sock = None
            self.sock = socket.create_connection((self.host, port))
            self.sock.settimeout(None)

    ChipICC().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="vpcd's port on 127.0.0.1")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--card", type=Path, help="the virtual card file (phr card issue)")
    which.add_argument("--not-jpki", action="store_true", help="a card without JPKI")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    chip: JpkiChip | NotJpkiChip = NotJpkiChip() if args.not_jpki else JpkiChip(args.card)
    with contextlib.suppress(OSError, SystemExit):  # vpcd closed: pcscd stopped, card out
        run(args.port, chip)


if __name__ == "__main__":
    main()
