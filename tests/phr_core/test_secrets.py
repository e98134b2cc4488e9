"""Development secrets: made once, private, identical for every worker that races to make them."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from phr_core.config import DEV_PREFIX
from phr_core.secrets import derive_key, ensure_dev_secret


def _make(args: tuple[str, str]) -> str:
    folder, name = args
    return ensure_dev_secret(Path(folder), name)


def test_dev_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = ensure_dev_secret(tmp_path / "secrets", "PHR_X")
    assert first.startswith(DEV_PREFIX) and len(first) > 40
    assert ensure_dev_secret(tmp_path / "secrets", "PHR_X") == first
    mode = stat.S_IMODE((tmp_path / "secrets" / "PHR_X").stat().st_mode)
    assert mode == 0o600
    assert list((tmp_path / "secrets").iterdir()) == [tmp_path / "secrets" / "PHR_X"]


def test_racing_processes_agree_on_one_secret(tmp_path: Path) -> None:
    folder = str(tmp_path / "secrets")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        values = pool.map(_make, [(folder, "PHR_RACE")] * 32)
    assert len(set(values)) == 1


def test_derived_keys_differ_by_purpose_and_are_stable() -> None:
    a = derive_key("some secret", "purpose-a")
    assert len(a) == 32
    assert derive_key("some secret", "purpose-a") == a
    assert derive_key("some secret", "purpose-b") != a
    assert derive_key("other secret", "purpose-a") != a
