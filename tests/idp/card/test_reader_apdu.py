"""The JPKI card session (idp.card.reader.jpki) against the virtual JPKI chip directly, through
an in-memory transport (no pcscd): the bytes, the DigestInfo the chip signs, the retry counter
read without spending a try, wrong and locked PINs, the signature certificate behind its PIN.
The same conversation through a real pcscd is in test_reader_pcsc.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idp.card.profile import AUTH, SIGN
from idp.card.reader import apdu
from idp.card.reader.errors import MESSAGES, ReaderError
from idp.card.reader.jpki import JpkiCard
from idp.card.vcard import VirtualCard
from idp.card.virtual_reader.chip import JpkiChip, NotJpkiChip
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, AuthorityEnv


class Wire:
    """Command APDUs to the chip as bytes, status words split off, as PC/SC hands them back."""

    def __init__(self, chip: JpkiChip | NotJpkiChip) -> None:
        self.chip = chip
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        self.sent.append(command)
        answer = self.chip.execute(command)
        return answer[:-2], (answer[-2] << 8) | answer[-1]


def _card(authority_env: AuthorityEnv) -> tuple[VirtualCard, JpkiCard, Wire]:
    vc = authority_env.card(name="apdu")
    wire = Wire(JpkiChip(vc.path))
    card = JpkiCard(wire)
    card.select_application()
    return vc, card, wire


def test_the_commands_are_the_documented_bytes() -> None:
    assert apdu.select_application() == bytes.fromhex("00A4040C0AD392F000260100000001")
    assert apdu.select_file(apdu.FILES[AUTH].certificate) == bytes.fromhex("00A4020C02000A")
    assert apdu.pin_status() == bytes.fromhex("00200080")
    assert apdu.verify_pin("1234") == bytes.fromhex("002000800431323334")
    assert apdu.read_binary(0x0123, 256) == bytes.fromhex("00B0012300")
    di = apdu.sha256_digest_info(b"x")
    assert apdu.compute_signature(di) == bytes.fromhex("802A0080") + bytes([len(di)]) + di + b"\0"
    assert apdu.der_length(bytes.fromhex("3082061a")) == 0x61A + 4
    assert apdu.pin_answer(0x9000) == ("ok", None)
    assert apdu.pin_answer(0x63C2) == ("wrong", 2)
    for locked in (0x63C0, 0x6983, 0x6984):
        assert apdu.pin_answer(locked) == ("locked", 0)
    assert apdu.pin_answer(0x6A82) == ("other", None)


def test_read_verify_sign(authority_env: AuthorityEnv) -> None:
    vc, card, wire = _card(authority_env)
    assert card.read_certificate(AUTH) == vc.certificate_der(AUTH)
    assert card.tries_left(AUTH) == 3
    with pytest.raises(ReaderError) as too_early:
        card.sign(b"data")
    assert too_early.value.code == "card_error"  # 69 82: no PIN verified in this session
    card.verify_pin(AUTH_PIN)
    signature = card.sign(b"phr-card-auth-v1\nhttps://idp\nsession\nchallenge")
    key = vc.certificate(AUTH).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        signature,
        b"phr-card-auth-v1\nhttps://idp\nsession\nchallenge",
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    # the chip got the DigestInfo, not the data
    assert wire.sent[-1][5:-1] == apdu.sha256_digest_info(
        b"phr-card-auth-v1\nhttps://idp\nsession\nchallenge"
    )
    assert AUTH_PIN.encode() not in b"".join(wire.sent[:-1][:2])


def test_wrong_pins_count_down_then_lock_and_the_counter_costs_nothing(
    authority_env: AuthorityEnv,
) -> None:
    vc, card, _ = _card(authority_env)
    for left in (2, 1):
        with pytest.raises(ReaderError) as wrong:
            card.verify_pin("0000")
        assert wrong.value.code == "wrong_pin" and wrong.value.tries_left == left
        assert card.tries_left(AUTH) == left  # asking spends nothing
    with pytest.raises(ReaderError) as locked:
        card.verify_pin("0000")
    assert locked.value.code == "pin_locked"
    assert card.tries_left(AUTH) == 0
    with pytest.raises(ReaderError) as still:
        card.verify_pin(AUTH_PIN)  # even the right PIN: 69 83
    assert still.value.code == "pin_locked"
    assert VirtualCard.load(vc.path).tries_left(AUTH) == 0


def test_a_malformed_pin_never_reaches_the_card(authority_env: AuthorityEnv) -> None:
    _, card, wire = _card(authority_env)
    sent = len(wire.sent)
    with pytest.raises(ReaderError) as bad:
        card.verify_pin("12a4")
    assert bad.value.code == "pin_format" and len(wire.sent) == sent
    assert card.tries_left(AUTH) == 3


def test_the_signature_certificate_needs_its_pin(authority_env: AuthorityEnv) -> None:
    vc, card, _ = _card(authority_env)
    with pytest.raises(ReaderError):
        card.read_certificate(SIGN)
    card.verify_pin(SIGN_PIN.lower(), SIGN)  # the card's PIN is upper case; typed is folded
    assert card.read_certificate(SIGN) == vc.certificate_der(SIGN)
    signature = card.sign(b"enroll", SIGN)
    key = vc.certificate(SIGN).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"enroll", padding.PKCS1v15(), hashes.SHA256())


def test_not_a_my_number_card() -> None:
    card = JpkiCard(Wire(NotJpkiChip()))
    with pytest.raises(ReaderError) as exc:
        card.select_application()
    assert exc.value.code == "not_my_number_card"


def test_every_answer_has_both_languages() -> None:
    for code, (ja, en) in MESSAGES.items():
        assert ja and en and ja != en, code
    assert ReaderError("wrong_pin", tries_left=2).message("ja") == "暗証番号が違います。（残り2回）"
    assert ReaderError("wrong_pin", tries_left=2).message("en") == "Wrong PIN. (2 tries left)"
