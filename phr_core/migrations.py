"""Alembic, driven per service: each service has `<package>/migrations/` and its own version
table, so the four schemas can live in one database or in four."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

from phr_core.db import make_engine
from phr_core.services import ServiceSpec


def alembic_config(service: ServiceSpec, url: str, engine: Engine | None = None) -> Config:
    """An in-memory Alembic config for one service (no alembic.ini to keep in step)."""
    cfg = Config()
    cfg.set_main_option("script_location", f"{service.package}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = service.version_table
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(service: ServiceSpec, url: str, revision: str = "head") -> None:
    """Bring the service's schema up to `revision` (default: the newest)."""
    _run(command.upgrade, service, url, revision)


def downgrade(service: ServiceSpec, url: str, revision: str) -> None:
    """Take the service's schema down to `revision` (`base` removes every table)."""
    _run(command.downgrade, service, url, revision)


def _run(fn: Callable[[Config, str], None], service: ServiceSpec, url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        fn(alembic_config(service, url, engine), revision)
    finally:
        engine.dispose()


def head_revision(service: ServiceSpec) -> str | None:
    """The newest revision the code ships for this service."""
    script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    return script.get_current_head()


def current_revision(service: ServiceSpec, engine: Engine) -> str | None:
    """The revision the database is at, or None when the schema was never created."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": service.version_table})
        return ctx.get_current_revision()


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's `migrations/env.py`."""
    cfg = context.config
    version_table = cfg.attributes["version_table"]
    engine = cfg.attributes.get("engine")
    if engine is None:  # alembic's own command line: the URL from alembic.ini
        url = cfg.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("migrations need an engine or sqlalchemy.url")
        engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=conn.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
