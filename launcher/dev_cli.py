"""`phr dev …`: the whole platform on one machine for development (keys, demo data, the second
demo city, the development stand-ins served beside the services, the example app). Attached to
`phr` by launcher/cli.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy.exc import SQLAlchemyError

from idp import demo as idp_demo
from launcher import runner, supervisor
from launcher.cli_settings import settings as _settings
from phr_core import migrations, secrets
from phr_core.config import ConfigError, Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_MUNICIPALITIES
from phr_core.services import BY_NAME, SERVICES

EXAMPLE_STOP_TIMEOUT_S = 5.0


@click.group()
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


REPLICAS_HELP = "Run each service this many times behind HAProxy (needs PostgreSQL; default 1)."


@dev.command("run")
@click.option("--no-demo", is_flag=True, help="Do not load demo data.")
@click.option("--replicas", type=click.IntRange(1, 8), default=1, help=REPLICAS_HELP)
def dev_run(no_demo: bool, replicas: int) -> None:
    """Migrate, make development keys, load demo data and serve every service."""
    s = _settings()
    if s.production:
        raise click.ClickException("`phr dev run` is for development; use `phr <service> serve`")
    if replicas > 1:
        try:
            runner.require_shared_database(s, SERVICES)  # before migrating anything
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
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
        raise SystemExit(
            runner.serve(
                s, SERVICES, extras=second + _dev_extras(s), titles=titles, replicas=replicas
            )
        )
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
