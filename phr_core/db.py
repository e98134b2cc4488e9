"""Database engines and sessions shared by the services (SQLAlchemy 2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, MetaData, Result, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Stable constraint names, so migrations can drop and alter them on PostgreSQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData with the shared naming convention; each service gets its own."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class ServiceBase(DeclarativeBase):
    """Marker base; each service subclasses it with its own `metadata`."""

    __abstract__ = True


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the gunicorn workers read while one writes; foreign keys are off by default.
    # synchronous=NORMAL (SQLite's advice for WAL): a commit survives a crash of the process,
    # not a power cut, without an fsync per commit. The embedded default is for development
    # and small sites; PostgreSQL is the production database.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and safe pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pool_pre_ping: it costs a round trip on every checkout (several per request). A
    # connection the server dropped (restart, failover) fails one request, after which
    # SQLAlchemy discards the whole pool; pool_recycle retires connections before idle timeouts.
    return create_engine(url, pool_recycle=1800, pool_size=5, max_overflow=5)


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class Database:
    """One service's engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (single-use claims compare it with 1).
    Session.execute is typed as returning a Result; for those statements it is a CursorResult,
    which carries the count."""
    if not isinstance(result, CursorResult):
        raise TypeError("rowcount needs the result of an UPDATE or DELETE")
    return int(result.rowcount)
