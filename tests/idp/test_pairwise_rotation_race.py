"""`phr idp rotate-pairwise-key` from two shells at once (issue 20): each names its new key
after the highest id in use, so both reading before either writes would give two keys the
same id, which the IdP refuses at start (PHR_PAIRWISE_KEY names a key id twice)."""

from __future__ import annotations

import os
from pathlib import Path

from idp.cli import rotate_pairwise_key
from idp.subjects import parse_keyring
from phr_core.config import load_settings
from tests.phr_core.test_key_rotation import at_once

PROCESSES, ROUNDS = 4, 5


def _rotate_many(var_dir: str) -> None:
    os.environ["PHR_VAR_DIR"] = var_dir
    for _ in range(ROUNDS):
        rotate_pairwise_key.callback()  # type: ignore[misc]  # click's callback is Optional


def test_pairwise_rotations_at_once_give_distinct_key_ids(tmp_path: Path) -> None:
    var_dir = str(tmp_path / "var")
    settings = load_settings({"PHR_VAR_DIR": var_dir})
    settings.secret("PHR_PAIRWISE_KEY")
    at_once(_rotate_many, var_dir, PROCESSES)
    keyring = parse_keyring((settings.secrets_dir / "PHR_PAIRWISE_KEY").read_text())
    assert len(keyring) == 1 + PROCESSES * ROUNDS
