"""The `phr` command: one entry point for a city's IT staff and for developers.

phr dev run              everything, locally, with demo data (development)
phr db upgrade           create or update the database tables
phr db backup|restore    one encrypted archive of the databases and their keys
phr idp|fhir|consent|connector serve   run one service (production)
phr config check         what production mode would refuse, and why
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
from dotenv import load_dotenv
from sqlalchemy.exc import SQLAlchemyError

from connectors import cli as connectors_cli
from consent import cli as consent_cli
from federation import cli as federation_cli
from idp import cli as idp_cli
from idp import demo as idp_demo
from idp.card.cli import card
from launcher import backup, runner, supervisor
from launcher import purge as purge_mod
from phr_core import migrations, secrets
from phr_core.config import VARIABLES, ConfigError, Settings, load_settings
from phr_core.db import Database, make_engine, redact
from phr_core.demo_data import DEMO_MUNICIPALITIES
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
EXAMPLE_STOP_TIMEOUT_S = 5.0


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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


@main.group()
def dev() -> None:
    """Development helpers: keys, demo data, and the whole platform on one machine."""


def _ensure_dev_keys(s: Settings) -> list[str]:
    if s.production:
        raise click.ClickException("development keys are never made in production mode")
    made = []
    for svc in SERVICES:
        for sec in svc.secrets:
            if (
                secrets.lookup(sec.env, s.environ) is None
                and not (s.secrets_dir / sec.env).exists()
            ):
                made.append(sec.env)
            s.secret(sec.env)
    return made


@dev.command("keys")
def dev_keys() -> None:
    """Generate development secrets into $PHR_VAR_DIR/secrets (kept if already there)."""
    s = _settings()
    made = _ensure_dev_keys(s)
    click.echo(f"development keys in {s.secrets_dir}: " + (", ".join(made) or "already present"))


@dev.command("demo")
def dev_demo() -> None:
    """Load every service's demo data, the demo family and the card sandbox (idempotent)."""
    # The demo loaders import every service's models and the PHR server's transaction code
    # (about a second): only the demo commands pay for them, not every `phr` command.
    from launcher import sandbox
    from launcher.demo import load_all

    s = _settings()
    added = load_all(s, family=True)
    click.echo("demo data: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    second = _load_second_city(s)
    if second:
        click.echo("second city: " + ", ".join(f"{k} +{v}" for k, v in second.items()))
    click.echo(sandbox.prepare(s).summary())


def _load_second_city(s: Settings) -> dict[str, int]:
    from launcher import second_city  # with the demo loaders: off the start-up path (above)

    try:
        return second_city.load_demo(s, family=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@dev.command("run")
@click.option("--no-demo", is_flag=True, help="Do not load demo data.")
def dev_run(no_demo: bool) -> None:
    """Migrate, make development keys, load demo data and serve every service."""
    s = _settings()
    if s.production:
        raise click.ClickException("`phr dev run` is for development; use `phr <service> serve`")
    _ensure_dev_keys(s)
    for svc in SERVICES:
        migrations.upgrade(svc, s.database_urls[svc.name])
    if not no_demo:
        from launcher import sandbox  # the demo loaders: off the start-up path (dev_demo)
        from launcher.demo import load_all

        load_all(s, family=True)
        _load_second_city(s)
        click.echo(sandbox.prepare(s).summary())
    try:
        second = _second_city_targets(s)
        titles = {}
        if second:  # both cities' servers, each with its city
            first = DEMO_MUNICIPALITIES.get(s.option("PHR_CONNECTOR_MUNICIPALITY"))
            city = (
                f"{first.name_ja} {first.code}" if first else s.option("PHR_CONNECTOR_MUNICIPALITY")
            )
            titles = {n: f"{BY_NAME[n].title} — {city}" for n in ("fhir", "connector")}
        raise SystemExit(runner.serve(s, SERVICES, extras=second + _dev_extras(s), titles=titles))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _second_city_targets(s: Settings) -> tuple[runner.Target, ...]:
    """The second demo city's own PHR server and connector (launcher.second_city), after
    their schemas are in place (the demo data does it; --no-demo too)."""
    from launcher import second_city  # with the demo loaders: off the start-up path (dev_demo)

    city = second_city.municipality(s)
    second = second_city.settings_of(s)
    if city is None or second is None:
        return ()
    env = tuple(second_city.environ(s, city.code).items())
    out = []
    for name, port_variable in (
        ("fhir", "PHR_DEV_SECOND_FHIR_PORT"),
        ("connector", "PHR_DEV_SECOND_CONNECTOR_PORT"),
    ):
        svc = BY_NAME[name]
        migrations.upgrade(svc, second.database_urls[name])
        out.append(
            runner.Target(
                f"{name}-{city.code}",
                f"{svc.title} — {city.name_ja} {city.code}",
                svc.app_factory,
                second.ports[name],
                port_variable,
                env,
                threads=runner.threads_of(svc, second),
            )
        )
    return tuple(out)


def _dev_extras(s: Settings) -> tuple[runner.Target, ...]:
    """Development-only helpers served beside the services: the card authority stand-in (OCSP,
    CRL, renewal links) on the port of PHR_CARD_AUTHORITY_URL, and with PHR_CARD_VERIFIER=app
    and a loopback PHR_CARD_APP_ISSUER the authentication-app stand-in on its port."""
    port = urlsplit(s.option("PHR_CARD_AUTHORITY_URL")).port or 8005
    extras = [
        runner.Target(
            "authority",
            "Card authority stand-in (development)",
            "idp.authority_sim.app:create_app()",
            port,
            "PHR_CARD_AUTHORITY_URL",
        ),
    ]
    app_issuer = urlsplit(s.option("PHR_CARD_APP_ISSUER"))
    if s.option("PHR_CARD_VERIFIER") == "app" and app_issuer.hostname in ("127.0.0.1", "localhost"):
        # PHR_CARD_VERIFIER=app with a loopback issuer: the authentication-app stand-in.
        extras.append(
            runner.Target(
                "authapp",
                "Authentication app stand-in (development)",
                "idp.authapp_sim.app:create_app()",
                app_issuer.port or 8020,
                "PHR_CARD_APP_ISSUER",
            )
        )
    return tuple(extras)


@dev.command("example")
@click.option("--port", type=int, default=8010, show_default=True, help="Where it listens.")
def dev_example(port: int) -> None:
    """Run the example SMART app (examples/vaccination_app) against the local platform."""
    s = _settings()
    folder = Path(__file__).resolve().parents[1] / "examples" / "vaccination_app"
    if not (folder / "app.py").exists():
        raise click.ClickException(f"{folder} is missing (it ships with the source tree)")
    if importlib.util.find_spec("requests") is None:
        raise click.ClickException(
            f"the example needs requests: pip install -r {folder / 'requirements.txt'}"
        )
    uris = idp_demo.example_uris(port)
    env = {
        **os.environ,
        "APP_FHIR_URL": s.urls["fhir"],
        "APP_PORT": str(port),
        "APP_REDIRECT_URI": uris["redirect_uris"],
        "APP_HOME_URL": uris["post_logout_redirect_uris"],
    }
    _register_example_port(s, env.get("APP_CLIENT_ID") or idp_demo.DEMO_APP_ID, port)
    click.echo(f"example app on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    # Its own process group, stopped as a whole with a bound: a plain subprocess.call left
    # app.py running (and holding the port) whenever `phr` itself was stopped without a
    # KeyboardInterrupt (SIGTERM, or SIGINT ignored by a script's background job).
    raise SystemExit(
        supervisor.run_until_stopped(
            [sys.executable, "app.py"], env=env, cwd=folder, grace_s=EXAMPLE_STOP_TIMEOUT_S
        )
    )


def _register_example_port(s: Settings, client_id: str, port: int) -> None:
    """The sandbox's demo app client is registered for port 8010: add this port's redirect,
    so that `phr dev example --port N` signs in as docs/apps.md says. Another client (named
    by APP_CLIENT_ID, e.g. in PHR_IDP_CLIENTS_FILE) is the operator's and is left alone."""
    if s.production or client_id != idp_demo.DEMO_APP_ID:
        return
    db = Database(s.database_urls["idp"])
    try:
        registered = idp_demo.allow_example_port(db, port)
    except SQLAlchemyError:
        registered = False  # no IdP schema yet
    finally:
        db.dispose()
    if not registered:
        click.echo(
            f"note: the IdP has no client {client_id} yet; start the platform first "
            "(phr dev run), then start the example again",
            err=True,
        )


@dev.command("reset")
@click.confirmation_option(prompt="Delete every local database and development key?")
def dev_reset() -> None:
    """Delete $PHR_VAR_DIR (SQLite databases and development keys)."""
    s = _settings()
    if s.production:
        raise click.ClickException("refusing to delete data in production mode")
    shutil.rmtree(s.var_dir, ignore_errors=True)
    click.echo(f"removed {s.var_dir}")


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
