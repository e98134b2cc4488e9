"""A My Number card's JPKI application over any APDU transport (see `apdu` for the bytes and
where they come from). The transport is the only thing that touches the reader; this class only
speaks the card's language and turns its answers into `ReaderError`s."""

from __future__ import annotations

import re
from typing import Protocol

from idp.card.profile import AUTH, SIGN
from idp.card.reader import apdu
from idp.card.reader.errors import ReaderError

_PIN_RULES = {
    AUTH: (re.compile(r"^[0-9]{4}$"), "pin_format"),
    SIGN: (re.compile(r"^[A-Z0-9]{6,16}$"), "sign_pin_format"),
}
_MAX_CERTIFICATE = 8192  # JPKI certificates are about 1.5-2 KiB; anything larger is not one


class Transport(Protocol):
    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """Send one command APDU; (response data, status word). Raises ReaderError when the
        card or reader went away."""
        ...


class JpkiCard:
    """One session with the card: select the application, then read, verify, sign."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._selected: bytes | None = None

    def _send(self, command: bytes) -> tuple[bytes, int]:
        return self.transport.transmit(command)

    def select_application(self) -> None:
        """Select the JPKI application; any answer but 90 00 means it is not a My Number card."""
        _, sw = self._send(apdu.select_application())
        if sw != apdu.SW_OK:
            raise ReaderError("not_my_number_card", detail=f"SW {sw:04X}")
        self._selected = None

    def _select(self, fid: bytes, missing: str = "card_error") -> None:
        if self._selected == fid:
            return
        _, sw = self._send(apdu.select_file(fid))
        if sw != apdu.SW_OK:
            raise ReaderError(missing, detail=f"SELECT {fid.hex()} SW {sw:04X}")
        self._selected = fid

    def _read(self, offset: int, length: int) -> bytes:
        data, sw = self._send(apdu.read_binary(offset, length))
        if sw == apdu.SW_SECURITY_NOT_SATISFIED:
            raise ReaderError("card_error", detail="READ BINARY needs a PIN first")
        if sw != apdu.SW_OK or not data:
            raise ReaderError("card_error", detail=f"READ BINARY SW {sw:04X}")
        return data

    def read_certificate(self, kind: str = AUTH) -> bytes:
        """The DER certificate of `kind` (the signature certificate only after its PIN)."""
        self._select(apdu.FILES[kind].certificate, missing="no_certificate")
        head = self._read(0, 8)
        try:
            total = apdu.der_length(head)
        except ValueError:
            raise ReaderError("no_certificate", detail="not DER") from None
        if head[0] != 0x30 or total > _MAX_CERTIFICATE:
            raise ReaderError("no_certificate", detail="not a certificate")
        out = bytearray(head[:total])
        while len(out) < total:
            out += self._read(len(out), min(256, total - len(out)))
        return bytes(out[:total])

    def tries_left(self, kind: str = AUTH) -> int:
        """The PIN's retry counter, read without spending a try (0 = locked)."""
        self._select(apdu.FILES[kind].pin)
        _, sw = self._send(apdu.pin_status())
        if sw == apdu.SW_OK:
            # Already verified in this session ([O] notes the JPKI card always answers 63 Cx;
            # an ISO card may say 90 00 here): nothing spent, nothing to report.
            return -1
        state, tries = apdu.pin_answer(sw)
        if state in ("wrong", "locked"):
            return tries or 0
        raise ReaderError("card_error", detail=f"PIN status SW {sw:04X}")

    def verify_pin(self, pin: str, kind: str = AUTH) -> None:
        """VERIFY the PIN of `kind`; ReaderError wrong_pin (with tries left) or pin_locked."""
        pattern, code = _PIN_RULES[kind]
        pin = pin.strip().upper()
        if not pattern.match(pin):
            raise ReaderError(code)  # checked here so a typo never spends one of the tries
        self._select(apdu.FILES[kind].pin)
        _, sw = self._send(apdu.verify_pin(pin))
        state, tries = apdu.pin_answer(sw)
        if state == "ok":
            return
        if state == "wrong":
            raise ReaderError("wrong_pin", tries_left=tries)
        if state == "locked":
            raise ReaderError("pin_locked")
        raise ReaderError("card_error", detail=f"VERIFY SW {sw:04X}")

    def sign(self, data: bytes, kind: str = AUTH) -> bytes:
        """RSASSA-PKCS1-v1_5 / SHA-256 over `data` by the card's key of `kind` (its PIN must
        have been verified in this session): the card gets the SHA-256 DigestInfo."""
        self._select(apdu.FILES[kind].key)
        signature, sw = self._send(apdu.compute_signature(apdu.sha256_digest_info(data)))
        if sw == apdu.SW_SECURITY_NOT_SATISFIED:
            raise ReaderError("card_error", detail="signing needs the PIN first")
        if sw != apdu.SW_OK or not signature:
            raise ReaderError("card_error", detail=f"SIGN SW {sw:04X}")
        return signature
