"""`phr connector rotate-pseudonym-key` (issue 20): residents of the register keep their codes
(so their consent links and PHR records stay theirs), newcomers get codes under the new key,
and a second rotation keeps the first one's residents too. On both databases."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors import pseudonym_keys
from connectors.consent import match_link_requests
from connectors.pseudonym import Pseudonymizer
from connectors.register import read
from launcher.cli import main
from phr_core.config import Settings
from phr_core.db import Database

SAMPLE = Path(__file__).resolve().parents[2] / "connectors" / "samples" / "register.csv"
NEWCOMER = "1999999999"  # not in the register at the rotation


def _rotate(settings: Settings, register: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in settings.environ.items():
        monkeypatch.setenv(k, v)
    out = CliRunner().invoke(
        main, ["connector", "rotate-pseudonym-key", "--register", str(register)]
    )
    assert out.exit_code == 0, out.output
    return out.output


def _codes(settings: Settings, *numbers: str) -> list[str]:
    db = Database(settings.database_urls["connector"])
    try:
        pseudo = pseudonym_keys.pseudonymizer(settings, db)
    finally:
        db.dispose()
    return [pseudo.code(n) for n in numbers]


def test_residents_keep_their_codes_newcomers_get_the_new_key(
    migrated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = tmp_path / "register.csv"
    shutil.copyfile(SAMPLE, register)
    residents = list(read(register))
    a = residents[0]
    link_request = {
        "id": "r1",
        "name": a.name,
        "birthdate": a.birthdate.isoformat(),
        "sex": a.sex,
        "address": a.address,
    }
    first_key = migrated.secret("PHR_CONNECTOR_PSEUDONYM_KEY")
    before = _codes(migrated, a.number, NEWCOMER)
    assert before == [Pseudonymizer(first_key).code(n) for n in (a.number, NEWCOMER)]

    said = _rotate(migrated, register, monkeypatch)
    assert f"{len(residents)} residents keep their codes" in said
    keys = migrated.secret("PHR_CONNECTOR_PSEUDONYM_KEY").split()
    assert len(keys) == 2 and keys[1] == first_key
    after = _codes(migrated, a.number, NEWCOMER)
    # The resident's code, hence their consent link and records, is unchanged ...
    assert after[0] == before[0]
    db = Database(migrated.database_urls["connector"])
    try:
        pseudo = pseudonym_keys.pseudonymizer(migrated, db)
    finally:
        db.dispose()
    assert match_link_requests([link_request], register, pseudo) == {"r1": before[0]}
    # ... a newcomer's code is made with the new key, not the old.
    assert after[1] != before[1] and after[1] == Pseudonymizer(keys[0]).code(NEWCOMER)
    # Record keys keep their identity at the PHR server across the rotation.
    assert pseudo.record_key("mch", "42") == Pseudonymizer(first_key).record_key("mch", "42")

    # A second rotation, the newcomer now in the register: both keep what they had.
    with register.open("a", encoding="utf-8") as fh:
        fh.write(f"{NEWCOMER},新井 花子,,2020-04-01,2,福島県会津若松市栄町1番1号,,,,\n")
    _rotate(migrated, register, monkeypatch)
    assert len(migrated.secret("PHR_CONNECTOR_PSEUDONYM_KEY").split()) == 3
    assert _codes(migrated, a.number, NEWCOMER) == after


def test_an_empty_register_is_refused(
    migrated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = tmp_path / "register.csv"
    register.write_text(SAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n", "utf-8")
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    out = CliRunner().invoke(
        main, ["connector", "rotate-pseudonym-key", "--register", str(register)]
    )
    assert out.exit_code == 1 and "nobody would keep their code" in out.output
    assert len(migrated.secret("PHR_CONNECTOR_PSEUDONYM_KEY").split()) == 1


def test_a_resident_absent_at_the_second_rotation_keeps_their_code(
    migrated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = tmp_path / "register.csv"
    shutil.copyfile(SAMPLE, register)
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    a = next(iter(read(register)))
    before = _codes(migrated, a.number)
    _rotate(migrated, register, monkeypatch)
    assert _codes(migrated, a.number) == before
    without_a = tmp_path / "without.csv"  # a moves out before the next rotation
    without_a.write_text("\n".join([lines[0], *lines[2:]]) + "\n", "utf-8")
    _rotate(migrated, without_a, monkeypatch)
    assert _codes(migrated, a.number) == before  # a, back, is the same person as before
