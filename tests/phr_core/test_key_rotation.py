"""Attacks on phr_core.key_rotation (issue 20): rotations from two shells at once, the file
left after a rewrite, and --force without --retire."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from click.testing import CliRunner

from phr_core import key_rotation
from phr_core.config import ConfigError, load_settings
from phr_core.key_commands import rotation_command

NAME = "PHR_IDP_SECRET_KEY"
NOBODY = 65534
PROCESSES, ROUNDS = 4, 15


def at_once(target: Callable[[str], None], arg: str, processes: int) -> None:
    """`target(arg)` in several processes started together (shells running a command)."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=target, args=(arg,)) for _ in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0


def _rotate_many(var_dir: str) -> None:
    settings = load_settings({"PHR_VAR_DIR": var_dir})
    for _ in range(ROUNDS):
        key_rotation.prepend(settings, NAME)


def test_rotations_from_several_shells_at_once_keep_every_key(tmp_path: Path) -> None:
    """Each rotation reads the secret and writes it back with a new key in front: two at once
    must not lose one (the lost key may already sign cookies that then stop opening)."""
    var_dir = str(tmp_path / "var")
    settings = load_settings({"PHR_VAR_DIR": var_dir})
    first = settings.secret(NAME)
    at_once(_rotate_many, var_dir, PROCESSES)
    path = settings.secrets_dir / NAME
    entries = path.read_text().split()
    assert len(entries) == 1 + PROCESSES * ROUNDS and entries[-1] == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secrets_dir.stat().st_mode) == 0o700
    leftovers = [p.name for p in settings.secrets_dir.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [NAME]  # no half-written temporary file left beside it


def test_force_without_retire_is_refused(tmp_path: Path, monkeypatch) -> None:
    """`--force` only skips the wait before retiring; alone it must not rotate quietly."""
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path / "var"))
    command = rotation_command("rotate-x", NAME, 600, "Rotate.")
    result = CliRunner().invoke(command, ["--force"])
    assert result.exit_code != 0 and "--retire" in result.output
    assert not (tmp_path / "var" / "secrets" / NAME).exists()


def test_retire_leaves_a_json_key_whole(tmp_path: Path) -> None:
    """A token decryption or federation key may be one JWK, written with spaces by any JSON
    tool: retiring must not read its pieces as keys and keep only `{"kty":`."""
    jwk = '{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB", "d": "CCCC"}\n'
    path = tmp_path / "fhir-token.jwk"
    path.write_text(jwk)
    path.chmod(0o600)
    name = "PHR_FHIR_TOKEN_DECRYPTION_KEY"
    settings = load_settings({"PHR_VAR_DIR": str(tmp_path / "var"), f"{name}_FILE": str(path)})
    with pytest.raises(ConfigError, match="JWK"):
        key_rotation.drop_older(settings, name, 0, force=True)
    assert path.read_text() == jwk


@pytest.mark.parametrize(("before", "after"), [(0o600, 0o600), (0o640, 0o640), (0o644, 0o640)])
def test_a_rewritten_secret_file_keeps_who_may_read_it(
    tmp_path: Path, before: int, after: int
) -> None:
    """A secret file an operator made readable by the service's group (0640) must stay so,
    or the service cannot read its key after the next restart; never readable by others."""
    path = tmp_path / "session.key"
    path.write_text("k" * 40 + "\n")
    path.chmod(before)
    name = "PHR_IDP_SECRET_KEY"
    settings = load_settings({"PHR_VAR_DIR": str(tmp_path / "var"), f"{name}_FILE": str(path)})
    key_rotation.prepend(settings, name)
    assert stat.S_IMODE(path.stat().st_mode) == after
    assert len(path.read_text().split()) == 2


def _mounted_secret(root: Path, value: str) -> Path:
    """A secret laid out as Kubernetes mounts one: NAME -> ..data/NAME, ..data -> ..<stamp>."""
    stamped = root / "..2026_01_01_00_00_00.000000001"
    stamped.mkdir(parents=True)
    (stamped / NAME).write_text(value + "\n")
    (stamped / NAME).chmod(0o640)
    (root / "..data").symlink_to(stamped.name)
    (root / NAME).symlink_to(f"..data/{NAME}")
    return root / NAME


def test_a_symlinked_secret_is_rewritten_at_its_target(tmp_path: Path) -> None:
    """A NAME_FILE that is a symlink stays one: the rotation writes through to its target
    (it used to replace the link with a regular file, cutting it off from what it named)."""
    link = _mounted_secret(tmp_path / "mount", "k" * 40)
    target = link.resolve()
    settings = load_settings({"PHR_VAR_DIR": str(tmp_path / "var"), f"{NAME}_FILE": str(link)})
    key_rotation.prepend(settings, NAME)
    key_rotation.prepend(settings, NAME)
    assert link.is_symlink() and (tmp_path / "mount" / "..data").is_symlink()
    entries = target.read_text().split()
    assert len(entries) == 3 and entries[-1] == "k" * 40
    assert link.read_text() == target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    key_rotation.drop_older(settings, NAME, 0, force=True)
    assert link.is_symlink() and target.read_text().split() == entries[:1]


def _rotate_as_nobody(var_dir: str, link: str, out: Connection) -> None:  # pragma: no cover
    """In a forked child: the rotation command as a user who may read the secret but not
    write beside it (root writes anywhere, so root drops to nobody first)."""
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    os.environ.update({"PHR_VAR_DIR": var_dir, f"{NAME}_FILE": link})
    result = CliRunner().invoke(rotation_command("rotate-x", NAME, 600, "Rotate."), [])
    out.send((result.exit_code, result.output, repr(result.exception)))


def test_a_read_only_secret_is_refused_with_how_to_rotate_it(tmp_path: Path) -> None:
    """A secret mounted read-only (a Kubernetes secret) cannot be rotated by a command: it says
    so and how, instead of an OSError traceback, and leaves the secret as it was."""
    root = Path(tempfile.mkdtemp(prefix="phr-ro-"))  # outside pytest's root-only directory
    try:
        link = _mounted_secret(root / "mount", "k" * 40)
        target = link.resolve()
        target.chmod(0o444)
        for d in (root / "mount", target.parent, root):
            if os.geteuid() == 0:
                os.chown(d, NOBODY, NOBODY)
            d.chmod(0o555)
        var_dir = root / "var"
        theirs, mine = multiprocessing.get_context("fork").Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(
            target=_rotate_as_nobody, args=(str(var_dir), str(link), mine)
        )
        child.start()
        assert theirs.poll(60)
        code, output, exception = theirs.recv()
        child.join(10)
        assert code == 1 and "SystemExit" in exception, exception  # a usage error, not a crash
        assert "Error:" in output and "read-only" in output and "Kubernetes" in output
        assert "restart" in output and "Traceback" not in output
        assert target.read_text() == "k" * 40 + "\n" and link.is_symlink()
    finally:
        for d in (root, root / "mount", target.parent):
            d.chmod(0o755)
        shutil.rmtree(root)
