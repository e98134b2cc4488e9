"""PHR_IDP_DATA_KEY's forms across a rotation (idp.data_keys): the identifier keys are the
same before, during and after (passkey handles, card bindings, auth-app subjects and PKCE
verifiers keep working), sealing moves to the newest key, and a damaged kept entry is refused."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from idp.data_keys import IDENTIFIER_PURPOSES, PINNED_PREFIX, DataKeys

OLD = "old-data-key-" + "a" * 40
NEW = "new-data-key-" + "b" * 40


def test_identifier_keys_survive_rotation_and_retirement() -> None:
    before, during = DataKeys(OLD), DataKeys(f"{NEW} {OLD}")
    after = DataKeys(f"{NEW} {during.pinned_entry()}")
    later = DataKeys(f"newer-{'c' * 40} {NEW} {during.pinned_entry()}")
    assert after.entries == [NEW] and OLD not in during.pinned_entry()
    for purpose in IDENTIFIER_PURPOSES:
        assert (
            before.identifier_key(purpose)
            == during.identifier_key(purpose)
            == after.identifier_key(purpose)
            == later.identifier_key(purpose)
        )
    assert after.pinned_entry() == during.pinned_entry()  # a second retirement keeps them


def test_sealing_moves_to_the_newest_key() -> None:
    old, during, new = DataKeys(OLD), DataKeys(f"{NEW} {OLD}"), DataKeys(NEW)
    purpose = "idp/card-attributes/v1"
    by_old = old.aead(purpose).encrypt(b"n" * 12, b"attrs", b"p1")
    assert during.aead(purpose).decrypt_with_index(b"n" * 12, by_old, b"p1") == (b"attrs", 1)
    by_new = during.aead(purpose).encrypt(b"n" * 12, b"attrs", b"p1")
    assert new.aead(purpose).decrypt(b"n" * 12, by_new, b"p1") == b"attrs"
    with pytest.raises(InvalidTag):
        old.aead(purpose).decrypt(b"n" * 12, by_new, b"p1")
    assert during.derive_all("x") == [new.derive("x"), old.derive("x")]


def test_a_damaged_kept_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="damaged"):
        DataKeys(f"{NEW} {PINNED_PREFIX}AAAA")
