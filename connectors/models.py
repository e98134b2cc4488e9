"""Connector tables: what each run read, loaded and rejected (with file, line and reason)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from phr_core.db import ServiceBase, new_metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(ServiceBase):
    __abstract__ = True
    metadata = new_metadata()


class Run(Base):
    """One extraction run over one source file."""

    __tablename__ = "connector_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    source: Mapped[str] = mapped_column(String(32))  # mch_csv, vaccination_csv, uke, …
    file_name: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="running")
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_sent: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)


class RowError(Base):
    """A rejected row: where it is and why, never its content (it may hold personal data)."""

    __tablename__ = "connector_row_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("connector_run.id", ondelete="CASCADE"))
    file_name: Mapped[str] = mapped_column(String(255))
    line: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    field: Mapped[str] = mapped_column(String(64), default="")


class Checkpoint(Base):
    """How far a run over one file (identified by its SHA-256) has been sent and acknowledged.

    A run that stops (crash, network failure) leaves `status="running"`; the next run over the
    same file content resumes after `line`, restoring the counters. Conditional updates make
    the batch in flight at the crash harmless to send again."""

    __tablename__ = "connector_checkpoint"
    __table_args__ = (UniqueConstraint("municipality_code", "source", "file_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    source: Mapped[str] = mapped_column(String(32))
    file_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    line: Mapped[int] = mapped_column(Integer, default=0)
    counters: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SentResource(Base):
    """A resource the PHR server acknowledged: its identity (the UUIDv5 of its conditional
    identifier), whose it is (pseudonymous code, empty for organizations) and a hash of the
    content sent. Lets an unchanged re-run skip sending; no content is stored."""

    __tablename__ = "connector_sent_resource"
    __table_args__ = (UniqueConstraint("municipality_code", "identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    identity: Mapped[str] = mapped_column(String(36))
    patient_code: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(32))


class ConsentEpoch(Base):
    """Per person, when the consent the sent cache's entries were sent under was given (the
    consent service's `since`). A different value at the start of a run means the consent
    was withdrawn and given again in between, perhaps with the records deleted: the person's
    sent-cache entries are forgotten and everything is sent again."""

    __tablename__ = "connector_consent_epoch"
    __table_args__ = (UniqueConstraint("municipality_code", "patient_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    patient_code: Mapped[str] = mapped_column(String(64))
    since: Mapped[str] = mapped_column(String(40))


class KeptPseudonym(Base):
    """A resident the register held at a pseudonym-key rotation (every rotation's rows are
    kept): their code under the key that rotation put in front (`lookup`, made with key
    `lookup_key`) → the older key their code stays made with (`key_id`), so their consent
    links and PHR records keep working. Only keyed codes and key ids, never a resident number
    (connectors/pseudonym_keys.py)."""

    __tablename__ = "connector_kept_pseudonym"
    __table_args__ = (UniqueConstraint("municipality_code", "lookup_key", "lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(6))
    lookup_key: Mapped[str] = mapped_column(String(16))
    lookup: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
