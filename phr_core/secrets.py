"""Secrets: where they come from, how development ones are made, and why production rejects them.

Development secrets are random, start with `dev-` and live in `var/secrets/` (git-ignored), so
production mode can recognise and refuse them wherever they were copied to.
"""

from __future__ import annotations

import contextlib
import os
import secrets as _random
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phr_core.errors import ConfigError

DEV_PREFIX = "dev-"  # every development secret starts with it, so production can refuse one
MIN_SECRET_LENGTH = 32


def _read_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE={path!r} cannot be read ({exc.strerror})") from None


def lookup(name: str, environ: Mapping[str, str]) -> str | None:
    """The secret from `NAME` or from the file named by `NAME_FILE`, else None."""
    value = environ.get(name, "").strip()
    if value:
        return value
    path = environ.get(f"{name}_FILE", "").strip()
    if path:
        return _read_file(name, path) or None
    return None


def ensure_dev_secret(secrets_dir: Path, name: str) -> str:
    """Return the development secret `name`, creating it once. Safe when several worker
    processes start together: the file appears atomically and the first writer wins."""
    path = secrets_dir / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = DEV_PREFIX + _random.token_urlsafe(48)
    fd, tmp = tempfile.mkstemp(dir=secrets_dir, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text(encoding="utf-8").strip()


def production_problems(name: str, environ: Mapping[str, str], var_dir: Path) -> list[str]:
    """Why the secret `name` is unfit for production, if it is (empty list when fine)."""
    file_path = environ.get(f"{name}_FILE", "").strip()
    if file_path and not environ.get(name, "").strip():
        resolved = Path(file_path).expanduser().resolve()
        if (var_dir / "secrets") in resolved.parents:
            return [f"{name}_FILE points at a development key in {var_dir / 'secrets'}"]
    try:
        value = lookup(name, environ)
    except ConfigError as exc:
        return [str(exc)]
    if value is None:
        return [f"{name} is not set (nor {name}_FILE)"]
    if value.startswith(DEV_PREFIX):
        return [f"{name} is a development key (made by `phr dev keys`); set a production secret"]
    if len(value) < MIN_SECRET_LENGTH:
        return [f"{name} is too short: use at least {MIN_SECRET_LENGTH} random characters"]
    # Rotatable secrets hold several keys separated by spaces (phr_core.key_rotation), so a
    # passphrase with spaces would be read as a few short keys: refuse it. A JWK or PEM is
    # one key whatever its spacing.
    if not value.startswith(("{", "-----")) and any(
        len(entry) < MIN_SECRET_LENGTH for entry in value.split()
    ):
        return [
            f"{name} holds several keys separated by spaces and one is shorter than "
            f"{MIN_SECRET_LENGTH} characters: a secret must not contain spaces (each key is a "
            "long random string)"
        ]
    return []


def derive_key(secret: str, purpose: str, length: int = 32) -> bytes:
    """A fixed-length key for one purpose from a configured secret (HKDF-SHA256), so one
    secret string of any form can feed AES or HMAC without being used twice."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode("utf-8")
    ).derive(secret.encode("utf-8"))
