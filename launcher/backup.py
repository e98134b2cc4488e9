"""`phr db backup` / `phr db restore`: every service's tables and the secrets that unlock
them, in one encrypted archive (launcher.backup_crypto).

Tables are written in a portable form, so a backup taken on SQLite restores into PostgreSQL
and the reverse: one JSON line per row, in primary-key order, streamed as read (memory stays
flat). Values that JSON has no type for are tagged: {"b": base64} bytes, {"t": ISO} datetimes
(UTC), {"d": ISO} dates, {"tm": ISO} times, {"n": "1.5"} decimals, {"u": "…"} UUIDs, {"j": …}
JSON documents. The gzip-compressed stream of lines is:

    {"manifest": {...}}           format, created, services (revision, tables), secrets
    {"secrets": {NAME: value}}    every secret a backed-up service names (phr_core.services)
    {"table": T, "service": S, "columns": [...]}   then one JSON array per row, then
    {"end": T, "rows": N}
    {"done": {"tables": N, "rows": N}}

A restore migrates each service to the revision the backup recorded, loads the rows, then
upgrades to head, so a backup of an older release restores into a newer one.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import tempfile
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Engine

from launcher.backup_crypto import BackupCryptoError, EncryptingWriter, decrypt_chunks
from phr_core import migrations, secrets
from phr_core.config import Settings
from phr_core.db import make_engine, redact
from phr_core.services import ServiceSpec

FORMAT = 1
BATCH = 500  # rows per fetch and per insert


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why and what to do."""


# --- values ---------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """A JSON-ready form of one column value (see the module docstring for the tags)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, time):
        return {"tm": value.isoformat()}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    if isinstance(value, dict | list):
        return {"j": value}
    raise BackupError(f"cannot back up a value of type {type(value).__name__}")


def decode(value: Any, column_type: Any) -> Any:
    """The value to insert into a column of `column_type` (the restored database's)."""
    if not isinstance(value, dict):
        return value
    ((tag, raw),) = value.items()
    if tag == "b":
        return base64.b64decode(raw)
    if tag == "t":
        moment = datetime.fromisoformat(raw)
        if getattr(column_type, "timezone", False):
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    if tag == "d":
        return date.fromisoformat(raw)
    if tag == "tm":
        return time.fromisoformat(raw)
    if tag == "n":
        return Decimal(raw)
    if tag == "u":
        return uuid.UUID(raw)
    if tag == "j":
        return raw
    raise BackupError(f"unknown value tag {tag!r} in the backup")


# --- what belongs to whom -------------------------------------------------------------------


def owned_tables(service: ServiceSpec) -> set[str]:
    """The table names a service's models declare (several services may share a database)."""
    models = importlib.import_module(f"{service.package}.models")
    return set(models.Base.metadata.tables)


def _reflect(conn: Connection, service: ServiceSpec) -> list[Table]:
    """The service's tables as they are in the database, parents before children."""
    present = set(inspect(conn).get_table_names()) & owned_tables(service)
    meta = MetaData()
    meta.reflect(conn, only=sorted(present))
    return [t for t in meta.sorted_tables if t.name in present]


def secret_values(settings: Settings, services: tuple[ServiceSpec, ...]) -> dict[str, str]:
    """Every secret the services name that is set: from the environment (or its `_FILE`), else
    the development one in $PHR_VAR_DIR/secrets. None is made here."""
    found: dict[str, str] = {}
    for svc in services:
        for spec in svc.secrets:
            value = secrets.lookup(spec.env, settings.environ)
            path = settings.secrets_dir / spec.env
            if value is None and path.exists():
                value = path.read_text(encoding="utf-8").strip()
            if value:
                found[spec.env] = value
    return found


# --- backup ---------------------------------------------------------------------------------


class _Lines:
    """JSON lines, gzip-compressed, into an encrypting writer."""

    def __init__(self, sink: EncryptingWriter) -> None:
        self._sink = sink
        self._zip = zlib.compressobj(6, zlib.DEFLATED, 31)

    def put(self, obj: Any) -> None:
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        self._sink.write(self._zip.compress(line.encode("utf-8")))

    def close(self) -> None:
        self._sink.write(self._zip.flush())
        self._sink.close()


@dataclass
class Summary:
    """What a backup or restore did, for the operator."""

    services: dict[str, str | None] = field(default_factory=dict)  # name -> revision
    rows: dict[str, int] = field(default_factory=dict)  # service -> rows
    secrets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def backup(
    settings: Settings, services: tuple[ServiceSpec, ...], out: Path, passphrase: str
) -> Summary:
    """Write the services' tables and secrets to `out`, encrypted under `passphrase`. The file
    appears only when complete (written beside it, then renamed)."""
    summary = Summary()
    values = secret_values(settings, services)
    engines = {svc.name: make_engine(settings.database_urls[svc.name]) for svc in services}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            lines = _Lines(EncryptingWriter(fh, passphrase))
            manifest = _manifest(services, engines, values)
            lines.put({"manifest": manifest})
            lines.put({"secrets": values})
            tables = total = 0
            for svc in services:
                with engines[svc.name].connect() as conn:
                    summary.services[svc.name] = manifest["services"][svc.name]["revision"]
                    summary.rows[svc.name] = 0
                    for table in _reflect(conn, svc):
                        n = _dump_table(conn, svc, table, lines)
                        summary.rows[svc.name] += n
                        tables, total = tables + 1, total + n
            lines.put({"done": {"tables": tables, "rows": total}})
            lines.close()
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        for engine in engines.values():
            engine.dispose()
    summary.secrets = sorted(values)
    unset = sorted({s.env for svc in services for s in svc.secrets} - set(values))
    if unset:
        summary.notes.append(f"not set, so not in the backup: {', '.join(unset)}")
    return summary


def _manifest(
    services: tuple[ServiceSpec, ...], engines: Mapping[str, Engine], values: Mapping[str, str]
) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for svc in services:
        engine = engines[svc.name]
        with engine.connect() as conn:
            tables = [t.name for t in _reflect(conn, svc)]
        described[svc.name] = {
            "revision": migrations.current_revision(svc, engine),
            "head": migrations.head_revision(svc),
            "database": engine.dialect.name,
            "tables": tables,
            "secrets": [s.env for s in svc.secrets if s.env in values],
            "secrets_missing": [s.env for s in svc.secrets if s.env not in values],
        }
    return {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": described,
        "secrets": sorted(values),
    }


def _dump_table(conn: Connection, svc: ServiceSpec, table: Table, lines: _Lines) -> int:
    columns = [c.name for c in table.columns]
    lines.put({"table": table.name, "service": svc.name, "columns": columns})
    order = list(table.primary_key.columns) or list(table.columns)
    result = conn.execution_options(yield_per=BATCH).execute(select(table).order_by(*order))
    n = 0
    for row in result:
        lines.put([encode(v) for v in row])
        n += 1
    lines.put({"end": table.name, "rows": n})
    return n


# --- reading an archive ---------------------------------------------------------------------


def _records(path: Path, passphrase: str) -> Iterator[Any]:
    """The archive's JSON lines, decrypted and decompressed as they are read."""
    unzip = zlib.decompressobj(31)
    pending = b""
    with path.open("rb") as fh:
        try:
            for chunk in decrypt_chunks(fh, passphrase):
                pending += unzip.decompress(chunk)
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield json.loads(line)
            pending += unzip.flush()
        except BackupCryptoError as exc:
            raise BackupError(str(exc)) from None
        except (zlib.error, ValueError) as exc:
            raise BackupError(f"damaged backup ({exc})") from None
    if pending.strip() or not unzip.eof or unzip.unused_data:
        raise BackupError("damaged backup (incomplete data stream)")


@dataclass
class Contents:
    """What a whole, verified archive holds (its rows are read again when loading)."""

    manifest: dict[str, Any]
    secrets: dict[str, str]
    rows: int


def verify(path: Path, passphrase: str) -> Contents:
    """Read the whole archive once: every chunk must authenticate and the stream must end as
    a complete backup does, before anything is restored from it."""
    manifest: dict[str, Any] | None = None
    values: dict[str, str] = {}
    done: dict[str, Any] | None = None
    for rec in _records(path, passphrase):
        if isinstance(rec, dict) and "manifest" in rec:
            manifest = rec["manifest"]
        elif isinstance(rec, dict) and "secrets" in rec:
            values = rec["secrets"]
        elif isinstance(rec, dict) and "done" in rec:
            done = rec["done"]
    if manifest is None or done is None:
        raise BackupError("damaged backup (no manifest or no end record)")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not supported here")
    return Contents(manifest, values, int(done["rows"]))


# --- restore --------------------------------------------------------------------------------


def _row_count(conn: Connection, svc: ServiceSpec) -> dict[str, int]:
    counts = {}
    for table in _reflect(conn, svc):
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if n:
            counts[table.name] = n
    return counts


def occupied(settings: Settings, services: list[ServiceSpec]) -> list[str]:
    """What a restore would overwrite: one line per service whose tables hold rows (a schema
    without rows, e.g. after `phr db upgrade`, is replaced without asking)."""
    found = []
    for svc in services:
        url = settings.database_urls[svc.name]
        engine = make_engine(url)
        try:
            revision = migrations.current_revision(svc, engine)
            with engine.connect() as conn:
                counts = _row_count(conn, svc)
        finally:
            engine.dispose()
        if counts:
            found.append(
                f"{svc.name}: {sum(counts.values())} rows in {len(counts)} tables at revision "
                f"{revision} on {redact(url)}"
            )
    return found


def secrets_of(contents: Contents, services: list[ServiceSpec]) -> dict[str, str]:
    """The archive's secrets that the services being restored name."""
    names = {spec.env for svc in services for spec in svc.secrets}
    return {k: v for k, v in contents.secrets.items() if k in names}


def secret_conflicts(settings: Settings, values: Mapping[str, str], target: Path) -> list[str]:
    """Secrets already set here to another value than the backup's (names only)."""
    clashes = []
    for name, value in values.items():
        current = secrets.lookup(name, settings.environ)
        if current is None and (target / name).exists():
            current = (target / name).read_text(encoding="utf-8").strip()
        if current is not None and current != value:
            clashes.append(name)
    return sorted(clashes)


def _prepare(settings: Settings, svc: ServiceSpec, revision: str | None) -> None:
    """Make the service's schema the one at the backup's revision. A schema already there is
    kept (its rows are deleted before loading); any other is dropped, version table too, and
    rebuilt by the migrations."""
    url = settings.database_urls[svc.name]
    engine = make_engine(url)
    try:
        if revision is not None and migrations.current_revision(svc, engine) == revision:
            return
        with engine.begin() as conn:
            for table in reversed(_reflect(conn, svc)):
                table.drop(conn)
            conn.execute(text(f'DROP TABLE IF EXISTS "{svc.version_table}"'))
    finally:
        engine.dispose()


def write_secrets(values: Mapping[str, str], target: Path) -> None:
    """Each secret as a file `target/NAME` (0600), as `phr dev keys` keeps them."""
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, value in values.items():
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target / name)


def restore(
    settings: Settings,
    services: list[ServiceSpec],
    path: Path,
    passphrase: str,
    contents: Contents,
    secrets_dir: Path,
) -> Summary:
    """Load a verified archive into the services' databases and write its secrets. The checks
    (`occupied`, `secret_conflicts`) are the caller's: the services' tables are empty, or the
    operator forced it."""
    summary = Summary()
    described = contents.manifest["services"]
    for svc in services:
        _prepare(settings, svc, described[svc.name]["revision"])
    values = secrets_of(contents, services)
    write_secrets(values, secrets_dir)
    summary.secrets = sorted(values)
    engines: dict[str, Engine] = {}
    tables: dict[tuple[str, str], Table] = {}
    try:
        for svc in services:
            revision = described[svc.name]["revision"]
            summary.services[svc.name] = revision
            summary.rows[svc.name] = 0
            if revision is None:
                summary.notes.append(f"{svc.name}: had no schema when backed up; nothing loaded")
                continue
            url = settings.database_urls[svc.name]
            migrations.upgrade(svc, url, revision)
            engines[svc.name] = make_engine(url)
            with engines[svc.name].begin() as conn:
                reflected = _reflect(conn, svc)
                for table in reversed(reflected):  # rows a migration seeded are in the backup
                    conn.execute(table.delete())
            tables.update({(svc.name, t.name): t for t in reflected})
        _load(path, passphrase, engines, tables, summary)
        for svc in services:
            if svc.name in engines:
                _reset_sequences(engines[svc.name], svc)
    finally:
        for engine in engines.values():
            engine.dispose()
    for svc in services:
        migrations.upgrade(svc, settings.database_urls[svc.name])
    return summary


def _load(
    path: Path,
    passphrase: str,
    engines: Mapping[str, Engine],
    tables: Mapping[tuple[str, str], Table],
    summary: Summary,
) -> None:
    conn: Connection | None = None
    table: Table | None = None
    columns: list[str] = []
    service = ""
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch and conn is not None and table is not None:
            conn.execute(table.insert(), batch)
            batch.clear()

    try:
        for rec in _records(path, passphrase):
            if isinstance(rec, list):
                if table is None:
                    continue  # a service not being restored
                values = {c: decode(v, table.c[c].type) for c, v in zip(columns, rec, strict=True)}
                batch.append(values)
                if len(batch) >= BATCH:
                    flush()
            elif "table" in rec:
                service = rec["service"]
                table = tables.get((service, rec["table"]))
                if table is None:
                    continue
                missing = set(rec["columns"]) - set(table.c.keys())
                if missing:
                    raise BackupError(
                        f"{rec['table']}: columns {sorted(missing)} are not in the schema at the "
                        "backup's revision; was the backup made by another release?"
                    )
                columns = rec["columns"]
                if conn is None or conn.engine is not engines[rec["service"]]:
                    if conn is not None:
                        conn.commit()
                        conn.close()
                    conn = engines[rec["service"]].connect()
            elif "end" in rec:
                flush()
                if table is not None:
                    summary.rows[service] += rec["rows"]
                table = None
        if conn is not None:
            conn.commit()
    finally:
        if conn is not None:
            conn.close()


def _reset_sequences(engine: Engine, svc: ServiceSpec) -> None:
    """PostgreSQL: move each serial column's sequence past the loaded ids."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in _reflect(conn, svc):
            for column in table.primary_key.columns:
                seq = conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": f'"{table.name}"', "c": column.name},
                ).scalar()
                if seq:
                    top = conn.execute(select(func.max(column))).scalar() or 0
                    conn.execute(text("SELECT setval(:s, :v, false)"), {"s": seq, "v": top + 1})
