"""`phr fhir …` commands of the PHR server."""

from __future__ import annotations

import click

from phr_core.config import ConfigError, load_settings
from phr_core.db import Database
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


commands = [rotate_keys]
