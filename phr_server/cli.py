"""`phr fhir …` commands of the PHR server."""

from __future__ import annotations

import click

from phr_core import sealing
from phr_core.config import ConfigError, load_settings
from phr_core.db import Database
from phr_core.key_commands import rotation_command
from phr_server.keys import rotate
from phr_server.storage import Keyring


@click.command("rotate-keys")
@click.option("--new-data-keys", is_flag=True, help="Also start a new data key per municipality.")
@click.option(
    "--reseal",
    is_flag=True,
    help="Re-encrypt stored rows under their municipality's newest data key (in batches).",
)
def rotate_keys(new_data_keys: bool, reseal: bool) -> None:
    """Re-wrap every data key under the newest master key, without downtime.

    \b
    To change the master key: put the new secret first in PHR_FHIR_DATA_KEY, the old one
    after it (separated by a space), restart the servers, run this command, then drop the
    old secret. Data keys stay the same, so running servers keep working throughout.
    """
    try:
        settings = load_settings()
        keyring = Keyring(settings.secret("PHR_FHIR_DATA_KEY"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    db = Database(settings.database_urls["fhir"])
    try:
        result = rotate(db, keyring, new_data_keys, reseal)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(
        f"re-wrapped {result.rewrapped} data key(s), started {result.new_keys} new, "
        f"re-sealed {result.resealed} resource(s)"
    )


rotate_token_key = rotation_command(
    "rotate-token-key",
    "PHR_FHIR_TOKEN_DECRYPTION_KEY",
    sealing.RETIRE_AFTER_S,
    """Rotate the key IdPs seal this PHR server's access tokens to, without downtime.

    \b
    1. phr fhir rotate-token-key: a new key in front of PHR_FHIR_TOKEN_DECRYPTION_KEY; the
       server publishes both in its federation metadata (the new one first, which IdPs seal
       to once their trust chain for it renews) and opens tokens sealed to either.
    2. phr fhir rotate-token-key --retire, 70 minutes later: the old key is dropped; a token
       sealed to it is refused from then on.
    """,
)

commands = [rotate_keys, rotate_token_key]
