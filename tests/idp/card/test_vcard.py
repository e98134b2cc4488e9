"""The virtual card behaves as a real one: PIN-encrypted keys, counted wrong PINs that survive a
restart, and a lock after 3 (authentication) or 5 (signature) wrong PINs."""

from __future__ import annotations

import pytest

from idp.card.errors import CardError
from idp.card.profile import AUTH, SIGN
from idp.card.vcard import PinFormatError, VirtualCard, check_pin_format
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, AuthorityEnv


def wrong(card: VirtualCard, kind: str, pin: str) -> CardError:
    with pytest.raises(CardError) as info:
        card.sign(kind, pin, b"data")
    return info.value


def test_keys_are_encrypted_under_their_pins(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    text = card.path.read_text()
    assert "PRIVATE KEY" not in text
    assert AUTH_PIN not in text.replace(card.data["auth"]["certificate"], "")
    assert card.sign(AUTH, AUTH_PIN, b"data")
    assert card.sign(SIGN, SIGN_PIN.lower(), b"data")  # letters are upper-case on the card


def test_authentication_pin_locks_after_three_wrong(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    first = wrong(card, AUTH, "0000")
    assert first.code == "wrong_pin" and first.tries_left == 2
    assert "残り2回" in first.message("ja") and "2 tries left" in first.message("en")
    # the counter is on the card: a fresh load (another run of the reader) sees it
    again = VirtualCard.load(card.path)
    assert again.tries_left(AUTH) == 2
    assert wrong(again, AUTH, "1111").tries_left == 1
    assert wrong(again, AUTH, "2222").code == "card_locked"
    # locked: even the right PIN is refused, and the signature key is unaffected
    assert wrong(VirtualCard.load(card.path), AUTH, AUTH_PIN).code == "card_locked"
    assert card.sign(SIGN, SIGN_PIN, b"data")


def test_signature_pin_locks_after_five_wrong(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    codes = [wrong(card, SIGN, "WRONG1").code for _ in range(5)]
    assert codes == ["wrong_pin"] * 4 + ["card_locked"]
    assert wrong(card, SIGN, SIGN_PIN).code == "card_locked"


def test_right_pin_resets_the_counter(authority_env: AuthorityEnv) -> None:
    card = authority_env.card()
    wrong(card, AUTH, "0000")
    wrong(card, AUTH, "0001")
    card.sign(AUTH, AUTH_PIN, b"data")
    assert VirtualCard.load(card.path).tries_left(AUTH) == 3


@pytest.mark.parametrize(
    ("kind", "pin"),
    [
        (AUTH, "123"),
        (AUTH, "12345"),
        (AUTH, "12a4"),
        (SIGN, "ABC12"),
        (SIGN, "A" * 17),
        (SIGN, "ABC-123"),
    ],
)
def test_pin_rules(kind: str, pin: str) -> None:
    with pytest.raises(PinFormatError):
        check_pin_format(kind, pin)
