"""The `phr` command: one entry point for a city's IT staff and for developers.

phr dev run              everything, locally, with demo data (development)
phr db upgrade           create or update the database tables
phr db backup|restore    one encrypted archive of the databases and their keys
phr idp|fhir|consent|connector serve   run one service (production)
phr config check         what production mode would refuse, and why
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click
from dotenv import load_dotenv

from connectors import cli as connectors_cli
from consent import cli as consent_cli
from federation import cli as federation_cli
from idp import cli as idp_cli
from idp.card.cli import card
from launcher import backup, dev_cli, runner
from launcher import purge as purge_mod
from launcher.cli_settings import settings as _settings
from phr_core import migrations, secrets
from phr_core.config import VARIABLES, ConfigError, Settings
from phr_core.db import make_engine, redact
from phr_core.services import BY_NAME, SERVICES, ServiceSpec, Variable
from phr_server import cli as phr_server_cli
from portal import cli as portal_cli

# Each package adds its own commands to its service's group (`phr fhir rotate-keys`), as a
# list `commands` in `<package>/cli.py`, so this CLI stays free of service logic; the portal
# serves the consent service's port and adds its commands to that group.
SERVICE_COMMANDS: dict[str, list[click.Command]] = {
    "idp": idp_cli.commands,
    "fhir": phr_server_cli.commands,
    "consent": consent_cli.commands + portal_cli.commands,
    "connector": connectors_cli.commands,
    "federation": federation_cli.commands,
}

SERVICE_CHOICE = click.Choice(list(BY_NAME))


def _pick(names: tuple[str, ...]) -> tuple[ServiceSpec, ...]:
    return tuple(BY_NAME[n] for n in names) if names else SERVICES


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Read settings from this file first; real environment variables win over it.",
)
def main(env_file: Path) -> None:
    """Federated PHR platform for municipalities.

    \b
    First time on a laptop:     phr dev run
    On a server (production):   PHR_ENV=production phr config check
                                phr db upgrade
                                phr idp serve   (and fhir, consent, connector)

    Settings come from environment variables (see `phr config show`).
    """
    if env_file.is_file():
        load_dotenv(env_file, override=False)


# --- config ---------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Show and check the configuration."""


@config.command("show")
@click.option("--markdown", is_flag=True, help="Print the documented table (for the README).")
def config_show(markdown: bool) -> None:
    """Every setting, its value here (secrets hidden) and what it means."""
    if markdown:
        click.echo("| Variable | Default | Meaning |\n|---|---|---|")
        for var in VARIABLES:
            click.echo(f"| `{var.name}` | {var.default or '(none)'} | {var.meaning} |")
        return
    s = _settings()
    for var in VARIABLES:
        click.echo(f"{var.name:<28} {effective_value(s, var)}")
        click.echo(f"{'':<28} {var.meaning}")


def effective_value(s: Settings, var: Variable) -> str:
    """What the services will really use for `var` (secrets hidden, passwords redacted), and
    where it came from when the variable itself is not set: a database URL may come from
    PHR_DATABASE_URL, a public URL from the port, a default from PHR_VAR_DIR."""
    env = s.environ
    raw = env.get(var.name, "").strip()
    if var.secret:
        return "(set)" if raw or env.get(var.name + "_FILE") else "(not set)"
    for svc in SERVICES:
        p = svc.env_prefix
        if var.name == f"PHR_{p}_DATABASE_URL":
            where = (
                ""
                if raw
                else (
                    "  (from PHR_DATABASE_URL)"
                    if env.get("PHR_DATABASE_URL", "").strip()
                    else "  (default)"
                )
            )
            return redact(s.database_urls[svc.name]) + where
        if var.name == f"PHR_{p}_PORT":
            return str(s.ports[svc.name]) + ("" if raw else "  (default)")
        if var.name == svc.url_env:
            return s.urls[svc.name] + ("" if raw else "  (default)")
    derived = {
        "PHR_ENV": s.env,
        "PHR_VAR_DIR": str(s.var_dir),
        "PHR_HOST": s.host,
        "PHR_WORKERS": str(s.workers),
        "PHR_LOG_LEVEL": s.log_level,
        "PHR_CONSENT_API_PORT": str(s.consent_api_port),
        "PHR_CONSENT_API_URL": s.consent_api_url,
    }
    if var.name in derived:
        return derived[var.name] + ("" if raw else "  (default)")
    if var.name == "PHR_DATABASE_URL":
        return redact(raw) if raw else "(not set)"
    try:
        value = s.option(var.name)
    except KeyError:
        value = raw or var.default
    return (value or "(empty)") + ("" if raw else "  (default)")


@config.command("check")
@click.option("--production", is_flag=True, help="Check as if PHR_ENV were production.")
def config_check(production: bool) -> None:
    """List what production mode refuses (exit status 1 if anything)."""
    s = _settings()
    problems = s.production_problems() if (production or s.production) else []
    if not (production or s.production):
        click.echo("Development mode: nothing is refused. Add --production to check for a server.")
        return
    if problems:
        for p in problems:
            click.echo(f"- {p}", err=True)
        raise SystemExit(1)
    click.echo("Ready for production.")


# --- db -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Create, update and inspect each service's database tables (Alembic migrations)."""


@db.command("upgrade")
@click.argument("services", nargs=-1, type=SERVICE_CHOICE)
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(services: tuple[str, ...], revision: str) -> None:
    """Apply migrations for SERVICES (default: all of them). Safe to run again."""
    s = _settings()
    for svc in _pick(services):
        url = s.database_urls[svc.name]
        migrations.upgrade(svc, url, revision)
        click.echo(f"{svc.name:<10} upgraded to {revision} on {redact(url)}")


@db.command("downgrade")
@click.argument("service", type=SERVICE_CHOICE)
@click.argument("revision")
def db_downgrade(service: str, revision: str) -> None:
    """Revert SERVICE's schema to REVISION (`-1` for one step, `base` drops every table)."""
    s = _settings()
    svc = BY_NAME[service]
    migrations.downgrade(svc, s.database_urls[svc.name], revision)
    click.echo(f"{svc.name} downgraded to {revision}")


@db.command("current")
def db_current() -> None:
    """Show each service's schema revision against the newest the code ships."""
    s = _settings()
    for svc in SERVICES:
        engine = make_engine(s.database_urls[svc.name])
        try:
            current = migrations.current_revision(svc, engine)
        finally:
            engine.dispose()
        head = migrations.head_revision(svc)
        state = "up to date" if current == head else f"needs upgrade to {head}"
        click.echo(f"{svc.name:<10} {current or '(empty)':<16} {state}")


PASSPHRASE_ENV = "PHR_BACKUP_PASSPHRASE"  # noqa: S105  # a variable's name, not a secret
MIN_PASSPHRASE = 12


def _passphrase(s: Settings, confirm: bool) -> str:
    """The backup passphrase: PHR_BACKUP_PASSPHRASE (or its _FILE), else asked for on a
    terminal; never read from the backup's own folder by default, never echoed."""
    value = secrets.lookup(PASSPHRASE_ENV, s.environ)
    if value is None:
        if not sys.stdin.isatty():
            raise click.ClickException(
                f"no backup passphrase: set {PASSPHRASE_ENV} (or {PASSPHRASE_ENV}_FILE)"
            )
        value = click.prompt(
            "Backup passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
    if confirm and len(value) < MIN_PASSPHRASE:
        raise click.ClickException(f"the backup passphrase needs {MIN_PASSPHRASE}+ characters")
    return value


@db.command("backup")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("services", nargs=-1, type=SERVICE_CHOICE)
def db_backup(output: Path, services: tuple[str, ...]) -> None:
    """Write SERVICES' databases (default: all) and the secrets that unlock them to OUTPUT,
    one archive encrypted with a passphrase (PHR_BACKUP_PASSPHRASE or asked for)."""
    s = _settings()
    phrase = _passphrase(s, confirm=True)
    try:
        summary = backup.backup(s, _pick(services), output, phrase)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    for name, revision in summary.services.items():
        click.echo(f"{name:<10} {summary.rows[name]:>8} rows at revision {revision}")
    click.echo(f"secrets: {', '.join(summary.secrets) or '(none)'}")
    for note in summary.notes:
        click.echo(note)
    click.echo(f"backup written to {output}; keep the passphrase apart from it")


@db.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("services", nargs=-1, type=SERVICE_CHOICE)
@click.option("--force", is_flag=True, help="Overwrite non-empty databases and other secrets.")
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the secrets (default: $PHR_VAR_DIR/secrets).",
)
def db_restore(
    archive: Path, services: tuple[str, ...], force: bool, secrets_dir: Path | None
) -> None:
    """Restore SERVICES (default: every one in ARCHIVE) from a `phr db backup` archive into
    empty databases, at the schema revision recorded, then upgrade them to head."""
    s = _settings()
    phrase = _passphrase(s, confirm=False)
    target = secrets_dir or s.secrets_dir
    try:
        contents = backup.verify(archive, phrase)
        present = contents.manifest["services"]
        unknown = [n for n in services if n not in present]
        if unknown:
            raise click.ClickException(f"not in this backup: {', '.join(unknown)}")
        chosen = [BY_NAME[n] for n in (services or tuple(present)) if n in BY_NAME]
        in_use = backup.occupied(s, chosen)
        clashes = backup.secret_conflicts(s, backup.secrets_of(contents, chosen), target)
        if (in_use or clashes) and not force:
            lines = [f"- database not empty: {x}" for x in in_use]
            lines += [f"- secret {n} differs from the backup's" for n in clashes]
            raise click.ClickException("refusing to overwrite (use --force):\n" + "\n".join(lines))
        for line in in_use:
            click.echo(f"overwriting {line}", err=True)
        for name in clashes:
            click.echo(f"overwriting secret {name} in {target}", err=True)
            if secrets.lookup(name, s.environ) is not None:
                click.echo(f"  {name} is also set in the environment, which wins: change it")
        summary = backup.restore(s, chosen, archive, phrase, contents, target)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    for name, revision in summary.services.items():
        click.echo(f"{name:<10} {summary.rows[name]:>8} rows restored (from revision {revision})")
    for note in summary.notes:
        click.echo(note)
    click.echo(f"secrets written to {target}: {', '.join(summary.secrets) or '(none)'}")


# --- dev ------------------------------------------------------------------------------------

# `phr dev …` (keys, demo data, the whole platform on one machine) is in launcher/dev_cli.py.
main.add_command(dev_cli.dev)


# --- purge: every service's housekeeping, for the scheduler (launcher.purge) -----------------


@main.command("purge")
@click.option(
    "--link-request-days",
    default=purge_mod.LINK_REQUEST_DAYS,
    show_default=True,
    help="Close link requests no city answered within this many days.",
)
@click.option(
    "--portal-idle-hours",
    default=24,
    show_default=True,
    help="Drop the portal's stored tokens of sessions idle this long.",
)
def purge(link_request_days: int, portal_idle_hours: int) -> None:
    """Delete what has expired in every service (run it daily; docs/operations.md). The access
    history, the consent trail and the sign-in audit are kept."""
    done = purge_mod.purge_all(
        _settings(),
        link_request_days=link_request_days,
        portal_idle=timedelta(hours=portal_idle_hours),
    )
    for p in done:
        click.echo(f"{p.count:>8}  {p.service:<8} {p.kind}")
    click.echo("kept: access history (AuditEvents), consent trail, sign-in audit")


# --- one group per service ------------------------------------------------------------------


def _service_group(svc: ServiceSpec) -> click.Group:
    @click.group(name=svc.name, help=f"{svc.title}.")
    def group() -> None:
        pass

    @group.command("serve")
    @click.option("--migrate", is_flag=True, help="Apply database migrations first.")
    def serve(migrate: bool) -> None:
        s = _settings()
        try:
            s.require_production_ready((svc,))
            if migrate:
                migrations.upgrade(svc, s.database_urls[svc.name])
            raise SystemExit(runner.serve(s, (svc,)))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

    for command in SERVICE_COMMANDS.get(svc.name, ()):
        group.add_command(command)
    serve.help = (
        f"Serve the {svc.title} on PHR_{svc.env_prefix}_PORT (default {svc.default_port}) "
        "under gunicorn with PHR_WORKERS workers, until Ctrl-C or SIGTERM. "
        "In production mode it first refuses development keys, missing secrets and "
        "plain-http public URLs."
    )
    return group


for _svc in SERVICES:
    main.add_command(_service_group(_svc))

# A top-level group that belongs to no single service: `phr card` (the virtual My Number card
# and the development card authority) lives with the IdP's card code.
main.add_command(card)


if __name__ == "__main__":
    main()
