"""Reader mode through a real pcscd: `phr card sign --reader` and `phr card readers` send APDUs
through pcsc-lite and vsmartcard's vpcd driver to the virtual JPKI chip, which is backed by a
virtual card file, and sign in at a live IdP (SQLite and PostgreSQL). Then every answer a
person at a reader can meet: wrong PIN with tries left, PIN locked, a card without JPKI, the
card taken off mid-way, the reader gone mid-way, no reader at all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.card.profile import AUTH
from idp.card.sessions import display_code
from idp.card.vcard import VirtualCard
from idp.card.virtual_reader.stack import PcscStack
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, CardIdp
from tests.idp.card.pcsc import phr, phr_started, require_stack, started_stack
from tests.idp.card.test_cli_sign import new_session, serve_on_issuer_port, taken


@pytest.fixture
def pcsc(tmp_path: Path) -> Iterator[PcscStack]:
    yield from started_stack(tmp_path / "pcsc")


def _env(idp: CardIdp) -> dict[str, str]:
    return {**idp.settings.environ, "PHR_CARD_AUTHORITY_URL": idp.env.url}


def _sign(idp: CardIdp, stack: PcscStack, code: str, pins: str):  # type: ignore[no-untyped-def]
    return phr(stack, _env(idp), ["card", "sign", code, "--reader", "--pin-stdin"], pins)


def test_sign_in_through_pcscd_enrolls_then_signs_in(card_idp: CardIdp, pcsc: PcscStack) -> None:
    card = card_idp.env.card(name="hanako")
    pcsc.insert(card.path)
    listed = phr(pcsc, _env(card_idp), ["card", "readers"])
    assert listed.returncode == 0, listed.stderr
    assert "My Number card (user-authentication PIN: 3 tries left)" in listed.stdout

    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        out = _sign(card_idp, pcsc, display_code(s1), f"{AUTH_PIN}\n{SIGN_PIN}\n")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Verified" in out.stdout and "Card read (Virtual PCD" in out.stderr
        assert AUTH_PIN not in out.stdout + out.stderr
        first = taken(card_idp, s1.id)
        assert first is not None and first.enrolled

        # a wrong PIN first: its message with the tries left, then the right one
        s2 = new_session(card_idp)
        out = _sign(card_idp, pcsc, s2.short_code, f"0000\n{AUTH_PIN}\n")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Wrong PIN. (2 tries left)" in out.stderr
        second = taken(card_idp, s2.id)
        assert second is not None and second.person_id == first.person_id
        assert not second.enrolled
    # a right PIN reset the counter on the chip (in the card file)
    assert VirtualCard.load(card.path).tries_left(AUTH) == 3


def test_pin_locked_after_the_limit_and_reported_without_a_try(
    card_idp: CardIdp, pcsc: PcscStack
) -> None:
    card = card_idp.env.card(name="locked")
    pcsc.insert(card.path)
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        out = _sign(card_idp, pcsc, s1.short_code, "0000\n0001\n0002\n")
        assert out.returncode == 3, out.stdout + out.stderr
        assert "Wrong PIN. (2 tries left)" in out.stderr
        assert "Wrong PIN. (1 tries left)" in out.stderr
        assert "locked after too many wrong PINs" in out.stderr
        assert taken(card_idp, s1.id) is None
        # next time: refused from the retry counter, before any PIN is read
        s2 = new_session(card_idp)
        out = _sign(card_idp, pcsc, s2.short_code, "")
        assert out.returncode == 3 and "locked" in out.stderr
        assert "no more PINs" not in out.stderr + out.stdout
    listed = phr(pcsc, {**_env(card_idp), "LANG": "ja_JP.UTF-8"}, ["card", "readers"])
    assert "残り0回" in listed.stdout
    assert VirtualCard.load(card.path).tries_left(AUTH) == 0


def test_a_card_without_jpki_is_not_a_my_number_card(card_idp: CardIdp, pcsc: PcscStack) -> None:
    pcsc.insert(None)
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        out = _sign(card_idp, pcsc, s1.short_code, f"{AUTH_PIN}\n")
    assert out.returncode == 1
    assert "This is not a My Number card" in out.stderr
    listed = phr(pcsc, _env(card_idp), ["card", "readers"])
    assert "not a My Number card" in listed.stdout


def test_no_card_on_the_reader(card_idp: CardIdp, pcsc: PcscStack) -> None:
    out = _sign(card_idp, pcsc, "ABCD-EFGH", f"{AUTH_PIN}\n")
    assert out.returncode == 1 and "There is no card in the reader" in out.stderr
    listed = phr(pcsc, _env(card_idp), ["card", "readers"])
    assert listed.returncode == 0 and ": no card" in listed.stdout


def _stopped_mid_way(card_idp: CardIdp, pcsc: PcscStack, pull: str) -> tuple[int, str]:
    """Start a sign-in, wait until the card's certificate was read (the CLI then waits for the
    PIN), pull the card or the reader, then type the PIN."""
    card = card_idp.env.card(name=f"mid-{pull}")
    pcsc.insert(card.path)
    with serve_on_issuer_port(card_idp.app, card_idp.settings.ports["idp"]):
        s1 = new_session(card_idp)
        proc = phr_started(
            pcsc, _env(card_idp), ["card", "sign", s1.short_code, "--reader", "--pin-stdin"]
        )
        assert proc.stderr is not None and proc.stdin is not None
        deadline = time.monotonic() + 60
        line = ""
        while "Card read" not in line:
            line = proc.stderr.readline()
            assert line or time.monotonic() < deadline, "the CLI never read the card"
        if pull == "card":
            pcsc.remove(wait=True)
        else:
            pcsc.unplug()
        _out, err = proc.communicate(f"{AUTH_PIN}\n", timeout=60)
        assert taken(card_idp, s1.id) is None
    assert VirtualCard.load(card.path).tries_left(AUTH) == 3  # the PIN never reached the chip
    return proc.returncode, err


def test_card_removed_mid_way(card_idp: CardIdp, pcsc: PcscStack) -> None:
    code, err = _stopped_mid_way(card_idp, pcsc, "card")
    assert code == 1 and "The card was removed while it was being read" in err


def test_reader_unplugged_mid_way(card_idp: CardIdp, pcsc: PcscStack) -> None:
    code, err = _stopped_mid_way(card_idp, pcsc, "reader")
    assert code == 1 and "The card reader was unplugged" in err


def test_no_reader(tmp_path: Path) -> None:
    require_stack()
    with PcscStack(tmp_path / "pcsc", with_reader=False) as stack:
        out = phr(stack, {}, ["card", "readers"])
        assert out.returncode == 1 and "No card reader found" in out.stderr
        ja = phr(stack, {"LANG": "ja_JP.UTF-8"}, ["card", "readers"])
        assert "カードリーダーが見つかりません" in ja.stderr
    # and no PC/SC service at all (its socket gone): the same answer
    out = phr(stack, {}, ["card", "sign", "ABCD-EFGH", "--reader", "--idp", "http://127.0.0.1:9"])
    assert out.returncode == 1 and "No card reader found" in out.stderr
