"""The `phr … rotate-…` commands of keys kept as several secrets, newest first
(phr_core.key_rotation): one shape for every such key family, so they read and behave alike."""

from __future__ import annotations

from collections.abc import Callable

import click

from phr_core import key_rotation
from phr_core.config import ConfigError, Settings, load_settings


def rotation_command(
    name: str,
    variable: str,
    overlap_s: float,
    help_text: str,
    after: Callable[[Settings], str] | None = None,
) -> click.Command:
    """`phr <service> NAME [--retire [--force]]` for the secret `variable`: a new key in front
    (the old ones still accepted), or, with --retire, the old ones dropped once `overlap_s`
    has passed since the rotation. `after` may add a line (e.g. what to tell a superior)."""

    @click.command(name, help=help_text)
    @click.option("--retire", is_flag=True, help="Drop the keys older than the newest one.")
    @click.option("--force", is_flag=True, help="With --retire: do not wait for the overlap.")
    def command(retire: bool, force: bool) -> None:
        if force and not retire:
            raise click.UsageError("--force only goes with --retire")
        try:
            settings = load_settings()
            click.echo(
                key_rotation.rotate_or_retire(
                    settings, variable, overlap_s, retire=retire, force=force
                )
            )
            if after is not None:
                click.echo(after(settings))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

    return command
