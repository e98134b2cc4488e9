"""What a run tells its operator: the counters of a file's run, the rejected-rows report (file,
line, field, reason: never a row's content) and a progress line on a terminal."""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import asdict, dataclass
from typing import TextIO

from connectors.sources.base import Problem


@dataclass
class Summary:
    read: int = 0
    skipped_no_consent: int = 0
    rejected: int = 0
    sent: int = 0  # rows whose resources the server acknowledged
    skipped_unchanged: int = 0  # rows the server already holds unchanged (sent cache)
    resources: int = 0  # resources mapped and validated
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: Summary) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def line(self) -> str:
        return (
            f"read {self.read}, skipped (no consent) {self.skipped_no_consent}, "
            f"rejected {self.rejected}, already loaded unchanged {self.skipped_unchanged}, "
            f"sent {self.sent} rows ({self.resources} resources mapped): "
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}"
        )


class Report:
    """The rejected-rows report: CSV `file,line,field,reason`, no row content."""

    def __init__(self, out: TextIO | None) -> None:
        self.writer = csv.writer(out) if out is not None else None
        if self.writer is not None:
            self.writer.writerow(["file", "line", "field", "reason"])
        self.problems: list[Problem] = []

    def add(self, p: Problem) -> None:
        if self.writer is not None:
            self.writer.writerow([p.file, p.line, p.field, p.reason])
        if len(self.problems) < 10_000:
            self.problems.append(p)


class Progress:
    """A one-line progress display, only on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.last = 0.0

    def update(self, name: str, s: Summary, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.25:
            return
        self.last = now
        self.stream.write(
            f"\r{name}: {s.read} rows, {s.skipped_no_consent} no consent, {s.sent} sent, "
            f"{s.rejected} rejected" + ("\n" if final else "")
        )
        self.stream.flush()
