"""A run's bookkeeping in the connector database: the run row, its rejected rows (file, line,
field, reason: never content) and the checkpoint that lets an interrupted run over the same
file content resume after its last acknowledged batch."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ScalarResult, select
from sqlalchemy.orm import Session

from connectors.models import Checkpoint, Run
from connectors.models import RowError as RowErrorRow
from connectors.report import Summary
from connectors.sources.base import Problem
from phr_core.db import Database


class RunLog:
    """One file's run as the connector database records it."""

    def __init__(self, db: Database, municipality: str, source: str, sha: str) -> None:
        self.db = db
        self.municipality = municipality
        self.source = source
        self.sha = sha
        self.run_id: int | None = None

    def start(self, file_name: str) -> tuple[int, dict[str, Any] | None]:
        """Open the run; the line to resume after and the counters to restore, when the last
        run over this file content stopped half way."""
        with self.db.session() as s:
            cp = self._checkpoint_row(s).one_or_none()
            resume, restored = 0, None
            if cp is None:
                s.add(
                    Checkpoint(
                        municipality_code=self.municipality,
                        source=self.source,
                        file_sha256=self.sha,
                        status="running",
                        line=0,
                        counters="{}",
                    )
                )
            elif cp.status == "running" and cp.line > 0:
                resume, restored = cp.line, json.loads(cp.counters or "{}") or None
            else:
                cp.status, cp.line, cp.counters = "running", 0, "{}"
            run = Run(
                municipality_code=self.municipality, source=self.source, file_name=file_name[:255]
            )
            s.add(run)
            s.flush()
            self.run_id = run.id
            return resume, restored

    def _checkpoint_row(self, s: Session) -> ScalarResult[Checkpoint]:
        return s.scalars(
            select(Checkpoint).where(
                Checkpoint.municipality_code == self.municipality,
                Checkpoint.source == self.source,
                Checkpoint.file_sha256 == self.sha,
            )
        )

    def checkpoint(self, line: int, summary: Summary, status: str) -> None:
        with self.db.session() as s:
            cp = self._checkpoint_row(s).one()
            cp.line, cp.status, cp.counters = line, status, json.dumps(asdict(summary))

    def row_error(self, p: Problem) -> None:
        if self.run_id is None:
            raise RuntimeError("the run has not started")
        with self.db.session() as s:
            s.add(
                RowErrorRow(
                    run_id=self.run_id,
                    file_name=p.file[:255],
                    line=p.line,
                    field=p.field[:64],
                    reason=p.reason,
                )
            )

    def fail(self) -> None:
        self._close("failed")

    def finish(self, summary: Summary) -> None:
        self._close("rejections" if summary.rejected else "done", summary)

    def _close(self, status: str, summary: Summary | None = None) -> None:
        if self.run_id is None:
            return
        with self.db.session() as s:
            run = s.get(Run, self.run_id)
            if run is None:
                return
            run.status = status
            run.finished_at = datetime.now(UTC)
            if summary is not None:
                run.rows_read = summary.read
                run.rows_sent = summary.sent
                run.rows_rejected = summary.rejected
