"""Reader mode of `phr card sign` and `phr card readers`: the card in a PC/SC reader as the
source of certificates and signatures, asking each PIN only after reading the retry counter
(so a locked card is reported without spending a try) and again after a wrong PIN."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from idp.card.profile import AUTH, SIGN
from idp.card.reader.errors import ReaderError
from idp.card.reader.jpki import JpkiCard
from idp.card.reader.pcsc import PcscTransport, list_readers


class PinSource(Protocol):
    def get(self, kind: str) -> str: ...


class ReaderCard:
    """The card in one reader, from `open()` to `close()` (one PC/SC transaction)."""

    def __init__(self, reader: str | None, lang: str, say: Callable[[str], None]) -> None:
        self.lang, self.say = lang, say
        self.transport = PcscTransport(reader)
        try:
            self.card = JpkiCard(self.transport)
            self.card.select_application()
        except BaseException:
            self.transport.close()
            raise
        self.verified: set[str] = set()

    @property
    def reader(self) -> str:
        return self.transport.reader

    def __enter__(self) -> ReaderCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def _verify(self, kind: str, pins: PinSource) -> None:
        if kind in self.verified:
            return
        while True:
            if self.card.tries_left(kind) == 0:
                raise ReaderError("pin_locked")
            try:
                self.card.verify_pin(pins.get(kind), kind)
            except ReaderError as exc:
                if exc.code not in ("wrong_pin", "pin_format", "sign_pin_format"):
                    raise
                self.say(exc.message(self.lang))
                continue
            self.verified.add(kind)
            return

    def certificate_der(self, kind: str, pins: PinSource) -> bytes:
        """The 利用者証明用 certificate needs no PIN; the 署名用 one needs its own."""
        if kind == SIGN:
            self._verify(SIGN, pins)
        return self.card.read_certificate(kind)

    def sign(self, kind: str, data: bytes, pins: PinSource) -> bytes:
        self._verify(kind, pins)
        return self.card.sign(data, kind)


@dataclass(frozen=True)
class ReaderReport:
    name: str
    card: str  # "none", "my_number_card" or a ReaderError code
    auth_tries_left: int | None = None


def survey() -> list[ReaderReport]:
    """Every reader, whether a card is on it, and for a My Number card the 利用者証明用 PIN's
    tries left (read without spending one)."""
    reports = []
    for info in list_readers():
        if not info.card_present:
            reports.append(ReaderReport(info.name, "none"))
            continue
        try:
            with PcscTransport(info.name) as transport:
                card = JpkiCard(transport)
                card.select_application()
                tries = card.tries_left(AUTH)
            reports.append(ReaderReport(info.name, "my_number_card", tries))
        except ReaderError as exc:
            reports.append(ReaderReport(info.name, exc.code))
    return reports
