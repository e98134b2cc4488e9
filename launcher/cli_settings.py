"""The settings every `phr` command reads, shared by the command modules (launcher/cli.py,
launcher/dev_cli.py): a configuration error ends the command with its message, not a trace."""

from __future__ import annotations

import click

from phr_core.config import ConfigError, Settings, load_settings


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
