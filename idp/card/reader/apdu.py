"""The JPKI application's commands as bytes, and what its status words mean.

The My Number card's JPKI application (公的個人認証 AP) has no public specification; what is
here was read from three independent public implementations and checked against each other:

  [O] OpenSC, src/libopensc/card-jpki.c and jpki.h (HAMANO Tsukasa), and the real-card
      transcript in OpenSC pull request #959 ("00 20 00 80" answered "63 C3").
  [M] libmyna / myna (github.com/jpki/myna): libmyna/reader.go, libmyna/jpki_ap.go,
      libmyna/api.go (Go), src/reader.rs and src/jpki.rs (its Rust rewrite).
  [R] jpki-rs (github.com/siketyan/jpki-rs): core/src/card.rs, core/src/ap/jpki.rs.
  [I] ISO/IEC 7816-4 for the generic status words.

| what | bytes | sources |
|---|---|---|
| JPKI application AID | D3 92 F0 00 26 01 00 00 00 01 | O, M, R |
| SELECT by AID | 00 A4 04 0C Lc AID | O, M, R |
| SELECT EF by file id | 00 A4 02 0C 02 FID | O, M, R |
| 利用者証明用 certificate EF | 00 0A (readable without PIN) | O, M, R |
| 利用者証明用 CA certificate EF | 00 0B | O, M, R |
| 利用者証明用 private key EF | 00 17 | O, M, R |
| 利用者証明用 PIN EF (4 digits, 3 tries) | 00 18 | O, M, R |
| 署名用 certificate EF (needs the signature PIN) | 00 01 | O, M, R |
| 署名用 CA certificate EF | 00 02 | O, M, R |
| 署名用 private key EF | 00 1A | O, M, R |
| 署名用 PIN EF (6-16 characters, 5 tries) | 00 1B | O, M, R |
| READ BINARY | 00 B0 P1P2=offset Le (certificate length from its DER header) | O, M, R |
| VERIFY (PIN as ASCII, EF selected first) | 00 20 00 80 Lc PIN | O, M, R |
| retry counter without spending a try | 00 20 00 80 (no data) → 63 Cx, x tries left | O, M |
| wrong PIN | 63 Cx, x = tries left | O, M |
| COMPUTE DIGITAL SIGNATURE (key EF selected first) | 80 2A 00 80 Lc DigestInfo 00 | O, M, R |
| what is signed | a DER DigestInfo; the card adds the PKCS #1 v1.5 padding | O, M, R |
| success | 90 00 | O, M, R, I |

Not confirmed twice (treated defensively, see `pin_answer`):
- the exact word of a *locked* PIN. [O] reads the tries from SW2 of "63 Cx" (so 63 C0 = none
  left) and [M]'s software card answers 63 C0; ISO 7816-4 names 69 83 "authentication
  method blocked" and 69 84 "reference data not usable". All three are read as locked.
- the answer of a card without the JPKI application to SELECT: ISO's 6A 82 "file or
  application not found" in [M]'s software card and [I]; any answer but 90 00 is read as
  "not a My Number card".
- 69 82 "security status not satisfied" for signing without a verified PIN is [I] only.
"""

from __future__ import annotations

import hashlib

from idp.card.profile import AUTH, SIGN

JPKI_AID = bytes.fromhex("D392F000260100000001")


class Files:
    """File ids of one certificate kind inside the JPKI application."""

    def __init__(self, certificate: bytes, ca_certificate: bytes, key: bytes, pin: bytes) -> None:
        self.certificate = certificate
        self.ca_certificate = ca_certificate
        self.key = key
        self.pin = pin


FILES = {
    AUTH: Files(
        bytes.fromhex("000A"), bytes.fromhex("000B"), bytes.fromhex("0017"), bytes.fromhex("0018")
    ),
    SIGN: Files(
        bytes.fromhex("0001"), bytes.fromhex("0002"), bytes.fromhex("001A"), bytes.fromhex("001B")
    ),
}

SW_OK = 0x9000
SW_NOT_FOUND = 0x6A82
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_REFERENCE_NOT_USABLE = 0x6984
SW_WRONG_P1P2 = 0x6B00
SW_WRONG_DATA = 0x6A80
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00

# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1): SEQUENCE { SEQUENCE { OID
# 2.16.840.1.101.3.4.2.1, NULL }, OCTET STRING (32) }.
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def _case3(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    if not 0 < len(data) <= 255:
        raise ValueError("short APDU data is 1 to 255 bytes")
    return bytes([cla, ins, p1, p2, len(data)]) + data


def select_application(aid: bytes = JPKI_AID) -> bytes:
    return _case3(0x00, 0xA4, 0x04, 0x0C, aid)


def select_file(fid: bytes) -> bytes:
    return _case3(0x00, 0xA4, 0x02, 0x0C, fid)


def read_binary(offset: int, length: int) -> bytes:
    """Le 00 asks for 256 bytes (a short APDU's maximum)."""
    if not 0 <= offset <= 0x7FFF or not 0 < length <= 256:
        raise ValueError("READ BINARY offset 0..32767, length 1..256")
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF])


def pin_status() -> bytes:
    """VERIFY without data: the card answers its retry counter and spends nothing."""
    return bytes([0x00, 0x20, 0x00, 0x80])


def verify_pin(pin: str) -> bytes:
    return _case3(0x00, 0x20, 0x00, 0x80, pin.encode("ascii"))


def compute_signature(digest_info: bytes) -> bytes:
    return _case3(0x80, 0x2A, 0x00, 0x80, digest_info) + b"\x00"


def sha256_digest_info(data: bytes) -> bytes:
    """What the card signs for RSASSA-PKCS1-v1_5 with SHA-256 over `data`."""
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(data).digest()


def der_length(header: bytes) -> int:
    """Total length of the DER element whose first bytes are `header` (tag, length)."""
    if len(header) < 2:
        raise ValueError("DER header too short")
    first = header[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 3 or len(header) < 2 + n:
        raise ValueError("unsupported DER length")
    return 2 + n + int.from_bytes(header[2 : 2 + n], "big")


def pin_answer(sw: int) -> tuple[str, int | None]:
    """('ok'|'wrong'|'locked'|'other', tries left) for an answer to VERIFY.

    63 Cx with x > 0 is a wrong PIN with x tries left; 63 C0, 69 83 and 69 84 are locked
    (see the module docstring: the locked word is not confirmed twice, so all three count)."""
    if sw == SW_OK:
        return "ok", None
    if sw & 0xFFF0 == 0x63C0:
        tries = sw & 0x0F
        return ("wrong", tries) if tries else ("locked", 0)
    if sw in (SW_AUTH_BLOCKED, SW_REFERENCE_NOT_USABLE):
        return "locked", 0
    return "other", None
