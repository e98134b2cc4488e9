"""Rotating a key kept in a secret that holds several keys, newest first.

The rotatable secrets (receipt keys, token decryption keys, federation keys, pairwise keys,
the pseudonym key) all take the same form: entries separated by spaces, the first one in use,
the later ones still accepted (published, opened, looked up). Rotating puts a fresh entry in
front; retiring drops every entry but the first once nothing made with them is still live.
The `phr … rotate-…` commands change the secret where it is kept: the `NAME_FILE`, or the
development key in `$PHR_VAR_DIR/secrets`. A value set in the environment cannot be changed
by a command: they say so, and how to do it by hand. A `NAME_FILE` that is a symlink is
rewritten at its target (the link stays); one on a read-only mount (a Kubernetes or Docker
secret) is refused with how to rotate it where it is managed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets as _random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phr_core.config import ConfigError, Settings
from phr_core.secrets import DEV_PREFIX


def secret_file(settings: Settings, name: str) -> Path:
    """The file holding the secret `name`, to be rewritten; ConfigError when it is set in the
    environment (a command cannot change that) or not set at all in production."""
    if settings.environ.get(name, "").strip():
        raise ConfigError(
            f"{name} is set in the environment, which this command cannot change: put a new "
            "long random string in front of its value (separated by a space), keep the old "
            "ones, and restart the service; or keep it in a file (NAME_FILE)"
        )
    file_name = settings.environ.get(f"{name}_FILE", "").strip()
    if file_name:
        return Path(file_name).expanduser()
    if settings.production:
        raise ConfigError(f"{name} is not set (nor {name}_FILE)")
    settings.secret(name)  # the development key, made once
    return settings.secrets_dir / name


_local = threading.local()  # .held: the secrets this thread holds the lock of (nesting)
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """Turn the OS refusing to write beside the secret at `path` (a read-only mount, such as a
    Kubernetes or Docker secret) into a ConfigError saying how to rotate it there instead."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NOT_WRITABLE:
            raise
        raise ConfigError(
            f"{path} cannot be written here ({exc.strerror}; a secret mounted read-only, such "
            "as a Kubernetes or Docker secret?): rotate it where the secret is managed: put the "
            "new key in front of its value (separated by a space), keep the old ones, update "
            "the secret and restart the services that read it"
        ) from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One change of the secret at `path` at a time, across shells and processes: two
    rotations that both read the old value would each write their own, and one new key (the
    one already in use, or the one residents' codes were recorded under) would be lost.
    The lock sits beside the file itself (a symlink's target), where `replace` writes."""
    key = path.resolve()
    held: set[Path] = _local.__dict__.setdefault("held", set())
    if key in held:
        yield
        return
    with _writable(path):
        fd = os.open(key.parent / f".{key.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # releases the lock


def replace(path: Path, text: str) -> None:
    """Write atomically (a running service reads either the old or the new file) and privately:
    the owner, and the group when the old file let its group read it (a service reading its
    key through its group must still read it after the rotation), never anyone else.
    A symlink (a mounted secret's usual form) is written through: its target is replaced and
    the link stays. A file that cannot be written is a ConfigError saying how to rotate it."""
    target = path.resolve()
    try:
        old = target.stat()
        mode, owner = (old.st_mode & 0o640) | 0o600, (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = 0o600, None
    with _writable(path):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename: a crash leaves old or new
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)  # root rotating a service's key leaves it the service's
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fresh_secret(settings: Settings) -> str:
    """A new random entry; in development it starts with `dev-`, so production refuses it."""
    return ("" if settings.production else DEV_PREFIX) + _random.token_urlsafe(48)


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _entries(name: str, path: Path, for_a_jwk: str) -> list[str]:
    """The secret's keys, newest first; ConfigError for one JWK (JSON, spaces and all), which
    is one key, not keys separated by spaces: cut at them, it would be destroyed."""
    current = read(path)
    if current.startswith("{"):
        raise ConfigError(
            f"{name} in {path} is a JWK (JSON): {for_a_jwk}, or keep random strings (a key "
            "is derived from each)"
        )
    return current.split()


def prepend(settings: Settings, name: str, entry: str | None = None) -> tuple[Path, list[str]]:
    """Put `entry` (default: a fresh random secret) in front of the secret `name`; returns the
    file and its entries, the new one first."""
    path = secret_file(settings, name)
    with locked(path):
        current = _entries(name, path, "put the new key in front by hand")
        entries = [entry or fresh_secret(settings), *current]
        replace(path, " ".join(entries))
    return path, entries


def age_s(path: Path) -> float:
    """Seconds since the file last changed (the last rotation, for the files rotated here)."""
    return time.time() - path.stat().st_mtime


def require_overlap(
    name: str, path: Path, overlap_s: float, force: bool, live: str = "what the old key made"
) -> None:
    """ConfigError while the last rotation of `name` (kept at `path`) is younger than
    `overlap_s`, unless `force`: `live` (made under the old key) may still be in use."""
    waited = age_s(path)
    if waited < overlap_s and not force:
        raise ConfigError(
            f"{name} was rotated {int(waited)} s ago; {live} may still be live for "
            f"{int(overlap_s - waited)} s more (wait, or use --force)"
        )


def drop_older(settings: Settings, name: str, overlap_s: float, force: bool) -> tuple[Path, int]:
    """Drop every entry of `name` but the first, refusing (ConfigError) while the last
    rotation is younger than `overlap_s` unless `force`. Returns the file and how many left."""
    path = secret_file(settings, name)
    with locked(path):
        entries = _entries(name, path, "it holds one key: there is nothing to retire")
        if len(entries) < 2:
            return path, 0
        require_overlap(name, path, overlap_s, force)
        replace(path, entries[0])
    return path, len(entries) - 1


def rotate_or_retire(
    settings: Settings, name: str, overlap_s: float, *, retire: bool, force: bool
) -> str:
    """One step of a rotation of the secret `name`, as a line for the operator: without
    `retire`, a new key in front; with it, every older key dropped (after `overlap_s`)."""
    if retire:
        path, dropped = drop_older(settings, name, overlap_s, force)
        return f"{name}: retired {dropped} older key(s) in {path}"
    path, entries = prepend(settings, name)
    return (
        f"{name}: new key in front in {path} ({len(entries)} keys held); retire the older "
        f"with --retire after {int(overlap_s // 60)} minutes"
    )
