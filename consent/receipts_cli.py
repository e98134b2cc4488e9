"""`phr consent verify-receipt` and `phr consent rotate-receipt-key`.

verify-receipt exits 0 when the receipt verifies (and prints what it says), 1 when it does not
(bad signature, altered content, unknown key, wrong algorithm, not a receipt), 2 when it cannot
be checked at all (no key set to be had, unreadable file)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, NoReturn

import click
from joserfc.jwk import ECKey

from consent import receipts_signed
from phr_core import key_rotation, outbound, receipt_keys
from phr_core.config import ConfigError, Settings, load_settings
from phr_core.secrets import DEV_PREFIX

NOT_VERIFIED = 1
CANNOT_CHECK = 2


def _fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


def _jwks_from_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeError) as exc:
        _fail(CANNOT_CHECK, f"cannot read the key set {path}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        _fail(CANNOT_CHECK, f'{path} is not a JWK Set ({{"keys": [...]}})')
    return data


def _jwks_from_url(settings: Settings, url: str) -> dict[str, Any]:
    try:
        resp = outbound.for_settings(settings).get(url, accept="application/json")
        data = json.loads(resp.body) if resp.status == 200 else None
    except (outbound.OutboundError, ValueError) as exc:
        _fail(CANNOT_CHECK, f"cannot fetch the receipt keys from {url}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        _fail(CANNOT_CHECK, f"{url} did not answer with a JWK Set")
    return data


@click.command("verify-receipt")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--jwks",
    "source",
    help="The receipt keys: a JWK Set file (offline) or an http(s) URL "
    "[default: $PHR_CONSENT_URL/receipts/jwks.json].",
)
def verify_receipt(file: Path, source: str | None) -> None:
    """Check a signed consent receipt (a .jws file from the portal) against the consent
    service's published receipt keys and print what it says. Exit status: 0 verified, 1 not
    verified, 2 could not check."""
    try:
        token = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        _fail(CANNOT_CHECK, f"cannot read {file}: {exc}")
    if source and not source.startswith(("http://", "https://")):
        jwks = _jwks_from_file(Path(source))
    else:
        settings = load_settings()
        jwks = _jwks_from_url(settings, source or receipt_keys.jwks_url(settings))
    try:
        claims = receipts_signed.verify(token, jwks)
    except receipts_signed.ReceiptError as exc:
        _fail(NOT_VERIFIED, f"NOT VERIFIED ({exc.reason}): {exc}")
    kid = receipts_signed.header_of(token)["kid"]
    click.echo(f"verified: signed by receipt key {kid}")
    for label, value in receipts_signed.facts(claims):
        click.echo(f"  {label:<10} {value}")


def _new_entry(current: str, production: bool) -> str:
    """The secret with a fresh key in front, in the form the current one is kept in."""
    if current.lstrip().startswith("{"):
        data = json.loads(current)
        kept = data.get("keys", [data])
        fresh = ECKey.generate_key("P-256", private=True)
        fresh.ensure_kid()
        return json.dumps({"keys": [fresh.as_dict(private=True), *kept]})
    prefix = "" if production else DEV_PREFIX
    return f"{prefix}{secrets.token_urlsafe(48)} {current.strip()}"


def rotate(settings: Settings) -> tuple[str, list[str], Path]:
    """Put a new signing key in front of the receipt keys; the old ones stay published.
    Returns the new kid, every kid, and the file changed."""
    name = receipt_keys.KEY_VARIABLE
    path = key_rotation.secret_file(settings, name)
    try:
        current = path.read_text(encoding="utf-8")
        updated = _new_entry(current, settings.production)
        keys = receipt_keys.parse(updated)
        key_rotation.replace(path, updated)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot rotate the receipt key in {path}: {exc}") from None
    return keys[0].kid or "", [k.kid or "" for k in keys], path


@click.command("rotate-receipt-key")
def rotate_receipt_key() -> None:
    """Start signing consent receipts with a new key. The old keys stay in the secret and
    published, so every receipt given so far still verifies; a running service signs with the
    new key at its next receipt (keys kept in a file) or after a restart (environment)."""
    try:
        new, every, path = rotate(load_settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"receipts are now signed with key {new} (in {path})")
    click.echo(f"published receipt keys: {', '.join(every)}")


commands = [verify_receipt, rotate_receipt_key]
