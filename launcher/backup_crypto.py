"""The encrypted container of a backup: a passphrase (scrypt) keys AES-256-GCM over chunks.

A backup holds every service's data and the keys that unlock it, so it is only ever written
encrypted. The layout (all integers big-endian):

    header  MAGIC(8) version(1) log2_n(1) r(1) p(1) salt(16) nonce_prefix(7)
    chunk*  length(4, high bit = last chunk) ciphertext(length)

Each chunk's nonce is nonce_prefix + counter(4) + last flag(1), and the header is its
associated data (the STREAM construction): chunks cannot be reordered, dropped, swapped
between backups or cut off without the reader noticing; a reader that sees the file end before
the chunk flagged last, or bytes after it, refuses it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"PHRBAK\x00\n"
VERSION = 1
CHUNK = 64 * 1024  # plaintext bytes per chunk: memory stays flat whatever the backup's size
LOG2_N, R, P = 15, 8, 1  # scrypt: about 32 MiB and a tenth of a second per guess
_HEADER = struct.Struct(">8sBBBB16s7s")
_LAST = 0x8000_0000
DAMAGED = "wrong passphrase or damaged backup"


class BackupCryptoError(Exception):
    """The archive cannot be opened: wrong passphrase, or altered, truncated or not a backup."""


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> AESGCM:
    if not 10 <= log2_n <= 22 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise BackupCryptoError(f"{DAMAGED} (implausible key parameters)")
    kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
    return AESGCM(kdf.derive(passphrase.encode("utf-8")))


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class EncryptingWriter:
    """A binary sink that encrypts what it is given, a chunk at a time, into `out`."""

    def __init__(self, out: BinaryIO, passphrase: str) -> None:
        salt, self._prefix = os.urandom(16), os.urandom(7)
        self._header = _HEADER.pack(MAGIC, VERSION, LOG2_N, R, P, salt, self._prefix)
        self._aead = _key(passphrase, salt, LOG2_N, R, P)
        self._out = out
        self._buffer = bytearray()
        self._counter = 0
        out.write(self._header)

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > CHUNK:  # keep at least one byte back for the last chunk
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def close(self) -> None:
        """Write the last chunk (flagged, so a reader can tell a complete backup)."""
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, plain: bytes, last: bool) -> None:
        if self._counter >= 2**32 - 1:
            raise BackupCryptoError("backup too large for one archive")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, self._header)
        self._out.write(struct.pack(">I", len(sealed) | (_LAST if last else 0)) + sealed)
        self._counter += 1


def _read_exactly(src: BinaryIO, n: int) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise BackupCryptoError(f"{DAMAGED} (the archive ends early: truncated)")
    return data


def decrypt_chunks(src: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """The plaintext, chunk by chunk; raises BackupCryptoError at the first chunk that does
    not authenticate, at a missing end, and at anything after the end."""
    header = src.read(_HEADER.size)
    if len(header) != _HEADER.size or not header.startswith(MAGIC):
        raise BackupCryptoError(f"{DAMAGED} (not a phr backup archive)")
    _, version, log2_n, r, p, salt, prefix = _HEADER.unpack(header)
    if version != VERSION:
        raise BackupCryptoError(f"backup archive version {version} is not supported here")
    aead = _key(passphrase, salt, log2_n, r, p)
    counter = 0
    while True:
        (word,) = struct.unpack(">I", _read_exactly(src, 4))
        last, length = bool(word & _LAST), word & ~_LAST
        if length > CHUNK + 16:
            raise BackupCryptoError(f"{DAMAGED} (implausible chunk length)")
        sealed = _read_exactly(src, length)
        try:
            plain = aead.decrypt(_nonce(prefix, counter, last), sealed, header)
        except InvalidTag:
            raise BackupCryptoError(DAMAGED) from None
        yield plain
        counter += 1
        if last:
            break
    if src.read(1):
        raise BackupCryptoError(f"{DAMAGED} (data after the end of the archive)")
