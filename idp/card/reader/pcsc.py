"""The card reader through PC/SC (pcsc-lite's pcscd on Linux, WinSCard on Windows, CryptoTokenKit
on macOS), with pyscard's low-level `smartcard.scard` API so every PC/SC return code is seen and
turned into one `ReaderError`:

- no PC/SC service, or a service with no reader → no_reader
- a reader with no card → no_card; a card another program holds → card_busy
- a transmit that fails: the reader's state then tells card_removed (card gone, reader still
  there) from reader_unplugged (reader or service gone)

pyscard is an optional dependency (extra `reader`): it is imported when a reader is first used,
so the IdP and the virtual-card CLI never need it or pcsc-lite's library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from idp.card.reader.errors import ReaderError

_REMOVED = (
    "SCARD_W_REMOVED_CARD",
    "SCARD_E_NO_SMARTCARD",
    "SCARD_W_RESET_CARD",
    "SCARD_W_UNPOWERED_CARD",
    "SCARD_W_UNRESPONSIVE_CARD",
)
_GONE = (
    "SCARD_E_NO_SERVICE",
    "SCARD_E_SERVICE_STOPPED",
    "SCARD_E_READER_UNAVAILABLE",
    "SCARD_E_UNKNOWN_READER",
    "SCARD_E_INVALID_HANDLE",
    "SCARD_E_NO_READERS_AVAILABLE",
)


LOSS_WAIT_S = 2.0


def _scard() -> ModuleType:
    try:
        # Optional dependency kept off every other start-up path (see the module docstring).
        import smartcard.scard as scard
    except ImportError:
        raise ReaderError("reader_support_missing") from None
    return scard


def _codes(scard: ModuleType, names: tuple[str, ...]) -> set[int]:
    return {getattr(scard, n) & 0xFFFFFFFF for n in names if hasattr(scard, n)}


@dataclass(frozen=True)
class ReaderInfo:
    name: str
    card_present: bool


class _Context:
    def __init__(self) -> None:
        self.scard = _scard()
        rv, self.handle = self.scard.SCardEstablishContext(self.scard.SCARD_SCOPE_USER)
        if rv != self.scard.SCARD_S_SUCCESS:
            raise ReaderError("no_reader", detail=f"PC/SC {rv & 0xFFFFFFFF:08X}")

    def readers(self) -> list[ReaderInfo]:
        s = self.scard
        rv, names = s.SCardListReaders(self.handle, [])
        if rv != s.SCARD_S_SUCCESS or not names:
            raise ReaderError("no_reader", detail=f"PC/SC {rv & 0xFFFFFFFF:08X}")
        rv, states = s.SCardGetStatusChange(
            self.handle, 0, [(n, s.SCARD_STATE_UNAWARE) for n in names]
        )
        if rv != s.SCARD_S_SUCCESS:
            raise ReaderError("no_reader", detail=f"PC/SC {rv & 0xFFFFFFFF:08X}")
        return [
            ReaderInfo(name, bool(event & s.SCARD_STATE_PRESENT)) for name, event, _atr in states
        ]

    def release(self) -> None:
        self.scard.SCardReleaseContext(self.handle)


def list_readers() -> list[ReaderInfo]:
    """Every reader PC/SC knows and whether a card is in it; ReaderError no_reader if none."""
    ctx = _Context()
    try:
        return ctx.readers()
    finally:
        ctx.release()


class PcscTransport:
    """One connection to the card in one reader, inside a PC/SC transaction (no other program
    can send commands between our VERIFY and our signature). Use as a context manager."""

    def __init__(self, reader: str | None = None) -> None:
        self._ctx = _Context()
        s = self._ctx.scard
        try:
            readers = self._ctx.readers()
            if reader is not None:
                chosen = [r for r in readers if r.name == reader]
                if not chosen:
                    raise ReaderError("unknown_reader")
            else:
                chosen = [r for r in readers if r.card_present] or readers[:1]
            self.reader = chosen[0].name
            if not chosen[0].card_present:
                raise ReaderError("no_card")
            rv, self._card, self._protocol = s.SCardConnect(
                self._ctx.handle,
                self.reader,
                s.SCARD_SHARE_SHARED,
                s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1,
            )
            if rv != s.SCARD_S_SUCCESS:
                raise self._failure(rv, "connect")
            rv = s.SCardBeginTransaction(self._card)
            if rv != s.SCARD_S_SUCCESS:
                s.SCardDisconnect(self._card, s.SCARD_LEAVE_CARD)
                raise self._failure(rv, "transaction")
        except BaseException:
            self._ctx.release()
            raise

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failure(self, rv: int, what: str) -> ReaderError:
        s = self._ctx.scard
        code = rv & 0xFFFFFFFF
        detail = f"{what}: PC/SC {code:08X}"
        if code == s.SCARD_E_SHARING_VIOLATION & 0xFFFFFFFF:
            return ReaderError("card_busy", detail=detail)
        if code in _codes(s, _REMOVED):
            return ReaderError(self._after_loss(), detail=detail)
        if code in _codes(s, _GONE):
            return ReaderError("reader_unplugged", detail=detail)
        return ReaderError(self._after_loss(default="card_error"), detail=detail)

    def _after_loss(self, default: str = "card_removed") -> str:
        """Ask PC/SC again which went away: the card or the reader (or the service). A card
        pulled in the middle of an APDU can tear the answer before the reader has noticed, so
        an unexplained failure waits up to LOSS_WAIT_S for the reader's state to settle."""
        deadline = time.monotonic() + LOSS_WAIT_S
        s = self._ctx.scard
        while True:
            try:
                present = {r.name: r.card_present for r in self._ctx.readers()}
            except ReaderError:
                return "reader_unplugged"
            if self.reader not in present:
                return "reader_unplugged"
            if not present[self.reader]:
                return "card_removed"
            # A card is there, but is it still ours? (One taken off and put back, or another
            # card, is a new insertion: our handle says SCARD_W_REMOVED_CARD.)
            rv = s.SCardStatus(self._card)[0] & 0xFFFFFFFF
            if rv in _codes(s, _REMOVED):
                return "card_removed"
            if rv in _codes(s, _GONE):
                return "reader_unplugged"
            if time.monotonic() > deadline:
                return default
            time.sleep(0.1)

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        s = self._ctx.scard
        rv, response = s.SCardTransmit(self._card, self._protocol, list(command))
        if rv != s.SCARD_S_SUCCESS:
            raise self._failure(rv, "transmit")
        if len(response) < 2:
            # vpcd (and some readers) answer "success" with nothing when the card left: ask
            # PC/SC which went away before calling it a card error.
            raise ReaderError(self._after_loss(default="card_error"), detail="empty response")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def close(self) -> None:
        """End the transaction and reset the card, so a verified PIN does not stay usable."""
        s = self._ctx.scard
        card: Any = getattr(self, "_card", None)
        if card is not None:
            s.SCardEndTransaction(card, s.SCARD_LEAVE_CARD)
            s.SCardDisconnect(card, s.SCARD_RESET_CARD)
            self._card = None
        self._ctx.release()
