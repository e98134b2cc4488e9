"""The JPKI application of a My Number card, answering command APDUs as the chip does (the
commands and status words are documented, with their sources, in idp.card.reader.apdu), backed
by a virtual card file: its certificates, its PIN-sealed keys and its retry counters, which a
wrong PIN spends and a right one resets in the file, as on the chip.

`NotJpkiChip` is any other ISO 7816 card (a bank or transport card): it knows no JPKI AID.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from idp.card.errors import CardError
from idp.card.profile import SIGN
from idp.card.reader import apdu
from idp.card.vcard import VirtualCard

# An ATR of the JPKI cards as OpenSC lists it (card-jpki.c); the reader code never looks at it.
JPKI_ATR = bytes.fromhex("3BE000FF8131FE4514")
OTHER_ATR = bytes.fromhex("3B8880010000000000000000")


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + bytes([sw >> 8, sw & 0xFF])


class NotJpkiChip:
    """A card with no JPKI application: every SELECT by name is 'not found'."""

    atr = OTHER_ATR

    def reset(self) -> None:
        pass

    def execute(self, command: bytes) -> bytes:
        if len(command) >= 4 and command[1] == 0xA4:
            return _sw(apdu.SW_NOT_FOUND)
        return _sw(apdu.SW_INS_NOT_SUPPORTED)


class JpkiChip:
    """Security state (application selected, PINs verified, unlocked keys) lives until reset,
    as on the chip; the counters live in the card file."""

    atr = JPKI_ATR

    def __init__(self, card_path: Path) -> None:
        self.card_path = Path(card_path)
        self.reset()

    def reset(self) -> None:
        self.selected_app = False
        self.current: bytes | None = None
        self.keys: dict[str, rsa.RSAPrivateKey] = {}

    def _card(self) -> VirtualCard:
        return VirtualCard.load(self.card_path)

    def _kind_of(self, attr: str) -> str | None:
        for kind, files in apdu.FILES.items():
            if getattr(files, attr) == self.current:
                return kind
        return None

    def execute(self, command: bytes) -> bytes:
        if len(command) < 4:
            return _sw(apdu.SW_WRONG_DATA)
        cla, ins, p1, p2 = command[:4]
        data, le = b"", None
        if len(command) == 5:
            le = command[4] or 256
        elif len(command) > 5:
            lc = command[4]
            data = command[5 : 5 + lc]
            if len(command) > 5 + lc:
                le = command[5 + lc] or 256
        handlers = {
            (0x00, 0xA4): self._select,
            (0x00, 0xB0): self._read_binary,
            (0x00, 0x20): self._verify,
            (0x80, 0x2A): self._sign,
        }
        handler = handlers.get((cla, ins))
        if handler is None:
            return _sw(
                apdu.SW_INS_NOT_SUPPORTED if cla in (0x00, 0x80) else apdu.SW_CLA_NOT_SUPPORTED
            )
        return handler(p1, p2, data, le)

    def _select(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 == 0x04:
            if data != apdu.JPKI_AID:
                return _sw(apdu.SW_NOT_FOUND)
            self.reset()
            self.selected_app = True
            return _sw(apdu.SW_OK)
        if p1 == 0x02 and self.selected_app:
            known = {f for files in apdu.FILES.values() for f in vars(files).values()}
            if data not in known:
                return _sw(apdu.SW_NOT_FOUND)
            self.current = data
            return _sw(apdu.SW_OK)
        return _sw(apdu.SW_NOT_FOUND)

    def _read_binary(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        kind = self._kind_of("certificate")
        if kind is None:
            return _sw(apdu.SW_NOT_FOUND)
        if kind == SIGN and SIGN not in self.keys:
            return _sw(apdu.SW_SECURITY_NOT_SATISFIED)  # the signature certificate needs its PIN
        der = self._card().certificate_der(kind)
        offset = (p1 << 8) | p2
        if offset > len(der):
            return _sw(apdu.SW_WRONG_P1P2)
        return _sw(apdu.SW_OK, der[offset : offset + (le or 256)])

    def _verify(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        kind = self._kind_of("pin")
        if kind is None or p2 != 0x80:
            return _sw(apdu.SW_NOT_FOUND)
        card = self._card()
        tries = card.tries_left(kind)
        if not data:
            return _sw(0x63C0 | max(0, min(tries, 15)))
        if tries <= 0:
            return _sw(apdu.SW_AUTH_BLOCKED)
        try:
            self.keys[kind] = card.unlock(kind, data.decode("ascii", "replace"))
        except CardError as exc:
            self.keys.pop(kind, None)
            return _sw(0x63C0 | (exc.tries_left or 0))
        return _sw(apdu.SW_OK)

    def _sign(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        kind = self._kind_of("key")
        if kind is None or (p1, p2) != (0x00, 0x80):
            return _sw(apdu.SW_NOT_FOUND)
        key = self.keys.get(kind)
        if key is None:
            return _sw(apdu.SW_SECURITY_NOT_SATISFIED)
        prefix = apdu.SHA256_DIGEST_INFO_PREFIX
        if len(data) != len(prefix) + 32 or not data.startswith(prefix):
            return _sw(apdu.SW_WRONG_DATA)  # the virtual chip signs SHA-256 DigestInfos only
        digest = data[len(prefix) :]
        signature = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return _sw(apdu.SW_OK, signature)
