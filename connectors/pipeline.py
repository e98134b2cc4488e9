"""A connector run over export files: stream rows → consent gate → pseudonymise → map →
validate → batch → send → checkpoint. Rows of people without consent stop at the gate: they
are counted, never mapped, stored or sent. Bad rows go to the report (file, line, field,
reason) and the run goes on."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from connectors.consent import CATEGORY_BY_SOURCE, ConsentSource, consent_epochs
from connectors.http import TransportError
from connectors.mapping import mch as map_mch
from connectors.mapping import uke as map_uke
from connectors.mapping import vaccination as map_vacc
from connectors.mapping.common import Context, Entry, MappingError
from connectors.models import Checkpoint, Run
from connectors.models import RowError as RowErrorRow
from connectors.pseudonym import Pseudonymizer
from connectors.register import ConsentedIndex
from connectors.sent_cache import SentCache, content_hash, identity
from connectors.sources import mch_csv, uke, vaccination_csv
from connectors.sources.base import UNREADABLE, Problem, Record, sniff_file, unexpected
from connectors.transport import Outcomes, Refused, Sink
from connectors.validation import validate
from phr_core.db import Database

SOURCES = ("mch", "vaccination", "uke")
# Resources many batches carry (each batch is self-contained): once the server acknowledged
# one, later batches holding it may be in flight together (they update, never create, it).
SHARED = {"Patient", "Organization", "Coverage", "RelatedPerson"}

Pending = list[tuple[Record, list[Entry], dict[str, tuple[str, str]]]]


@dataclass
class _Flight:
    """One batch sent (or being sent) to the server."""

    future: Future[Outcomes] | None
    pending: list[tuple[Record, list[Entry], dict[str, tuple[str, str]]]]
    last_line: int
    identities: set[str]
    counters: dict[str, int]  # the run's counters when the batch was cut
    refused: int  # rows refused by the server before it was cut


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


def detect_source(path: Path) -> str | None:
    """Which reader a file needs: UKE by name or first record, CSVs by their header."""
    if not path.is_file():
        return None
    if path.suffix.upper() == ".UKE":
        return "uke"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head[:3] in (b"IR,", b"YK,"):
        return "uke"
    text = head.decode(sniff_file(path), errors="ignore").splitlines()[0] if head else ""
    if "記録種別" in text:
        return "mch"
    if "ワクチン" in text:
        return "vaccination"
    return None


def read_source(source: str, path: Path) -> Iterator[Record | Problem]:
    if source == "mch":
        return mch_csv.read(path)
    if source == "vaccination":
        return vaccination_csv.read(path)
    if source == "uke":
        return uke.read(path)
    raise ValueError(f"unknown source {source}")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


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


@dataclass
class Connector:
    """Everything a run needs. `sink` is None for --dry-run."""

    municipality: str
    pseudo: Pseudonymizer
    consent: ConsentSource
    sink: Sink | None
    db: Database | None = None
    register_path: Path | None = None
    batch_size: int = 500
    report: Report = field(default_factory=lambda: Report(None))
    progress: Progress | None = None
    validate_resources: bool = True
    on_batch: Callable[[int], None] | None = None  # test hook: called after each acknowledged batch
    use_cache: bool = True  # False (`--full`): send every consented row again
    # Transactions in flight at once (the PHR server runs several workers). Batches that
    # share an identity the server may not hold yet are never in flight together, so two
    # conditional creates of one resource cannot race; checkpoints advance in file order.
    parallel: int = 1

    def __post_init__(self) -> None:
        self.consented: dict[str, set[str]] = {}
        for source, category in CATEGORY_BY_SOURCE.items():
            self.consented[source] = self.consent.codes(category)
        everyone = set().union(*self.consented.values())
        self.index = ConsentedIndex.build(
            self.register_path, self.pseudo, everyone, self.consented["uke"]
        )
        self._validated: set[str] = set()
        self._landed: set[str] = set()  # shared identities (Patient, …) the server acknowledged
        self.cache: SentCache | None = None
        if self.db is not None and self.sink is not None and self.use_cache:
            self.cache = SentCache(self.db, self.municipality)
            self.cache.evict_except(everyone)
            self.cache.evict_reconsented(
                consent_epochs(self.consent, sorted(set(CATEGORY_BY_SOURCE.values())))
            )

    # --- one record ---------------------------------------------------------------------------

    def _map(self, source: str, rec: Record, ctx: Context) -> list[Entry] | None:
        """The record's resources, or None when its person has not consented."""
        consented = self.consented[source]
        if source == "uke":
            code = self.index.by_insurance.get(rec.resident)
            if code is None:
                return None
            return map_uke.map_record(ctx, rec, code)
        code = self.pseudo.code(rec.resident)
        if code not in consented:
            return None
        rec.key = self.pseudo.record_key(source, rec.key)
        if source == "mch":
            mother = rec.data.get("mother")
            mother_code = self.pseudo.code(mother) if mother else None
            if mother_code not in consented:
                mother_code = None
            return map_mch.map_record(ctx, rec, code, mother_code)
        return map_vacc.map_record(ctx, rec, code)

    def _validate(self, entries: list[Entry]) -> None:
        for e in entries:
            if e.resource_type in ("Patient", "Organization"):
                url = e.full_url
                if url in self._validated:
                    continue
                validate(e.resource)
                if len(self._validated) < 500_000:
                    self._validated.add(url)
            else:
                validate(e.resource)

    # --- one file -----------------------------------------------------------------------------

    def run_file(self, path: Path, source: str | None = None) -> Summary:
        """Process one export file; resumes after the last acknowledged batch of an interrupted
        run over the same file content. Rows whose resources the server already holds
        unchanged (per the sent cache) are counted and not sent again."""
        source = source or detect_source(path)
        if source not in SOURCES:
            raise ValueError(f"{path.name}: cannot tell which source this file is")
        summary = Summary()
        ctx = Context(self.municipality, self.index, self.consented[source])
        dry = self.sink is None
        sha = file_sha256(path)
        resume_line = 0
        run_id = None
        if self.db is not None and not dry:
            resume_line, restored, run_id = self._start(path, source, sha)
            if restored:
                summary = Summary(**restored)
        name = path.name
        state = {"last_line": resume_line, "size": 0}
        candidates: list[tuple[Record, list[Entry]]] = []

        def reject(p: Problem) -> None:
            summary.rejected += 1
            self.report.add(p)
            if run_id is not None:
                self._row_error(run_id, p)

        pool = ThreadPoolExecutor(self.parallel) if self.parallel > 1 and not dry else None
        flight: deque[_Flight] = deque()

        refused = [0]  # rows the server refused so far (counted when their batch completes)

        def complete(f: _Flight) -> None:
            """Account for one sent batch, strictly in file order. The checkpoint's counters
            are those of the rows up to its line: reading counters as they were when the
            batch was cut, sending counters of the batches completed so far (all earlier)."""
            before = summary.rejected
            try:
                out = f.future.result() if f.future is not None else None
                done = f.pending
                if out is not None:
                    summary.sent += len(f.pending)
                    self._count(summary, out)
            except Refused as exc:
                done = self._isolate(name, f.pending, summary, reject, exc)
            refused[0] += summary.rejected - before
            if self.cache is not None:
                self.cache.remember({k: v for _, _, h in done for k, v in h.items()})
            for _, es, _ in done:
                self._landed.update(identity(e) for e in es if e.resource_type in SHARED)
            upto = Summary(**f.counters)
            upto.rejected += refused[0] - f.refused
            for k in ("sent", "created", "updated", "unchanged"):
                setattr(upto, k, getattr(summary, k))
            self._checkpoint(source, sha, f.last_line, upto, "running")
            if self.on_batch and f.pending:
                self.on_batch(f.last_line)

        def drain(keep: int = 0) -> None:
            while len(flight) > keep:
                complete(flight.popleft())

        def flush() -> None:
            if not candidates:
                return
            known = (
                self.cache.known(identity(e) for _, es in candidates for e in es)
                if self.cache
                else {}
            )
            pending: list[tuple[Record, list[Entry], dict[str, tuple[str, str]]]] = []
            for rec, entries in candidates:
                hashes = {}
                if self.cache is not None:
                    code = entries[0].value if entries[0].resource_type == "Patient" else ""
                    for e in entries:
                        ident = identity(e)
                        owner = code if e.resource_type != "Organization" else ""
                        hashes[ident] = (owner, content_hash(e))
                    if all(known.get(k) == v[1] for k, v in hashes.items()):
                        summary.skipped_unchanged += 1
                        continue
                try:
                    if self.validate_resources:
                        self._validate(entries)
                except MappingError as exc:
                    reject(Problem(name, rec.line, exc.field, exc.reason))
                    continue
                except Exception as exc:  # one row must never end the run
                    reject(Problem(name, rec.line, UNREADABLE, unexpected(exc)))
                    continue
                pending.append((rec, entries, hashes))
            candidates.clear()
            state["size"] = 0
            if dry:
                return
            last_line = state["last_line"]
            cut = asdict(summary)
            if not pending:
                flight.append(_Flight(None, [], last_line, set(), cut, refused[0]))
                drain(keep=self.parallel - 1 if pool else 0)
                return
            batch = [e for _, es, _ in pending for e in es]
            if pool is None:
                try:
                    out = self.sink.send(batch)  # type: ignore[union-attr]
                    summary.sent += len(pending)
                    self._count(summary, out)
                except Refused as exc:
                    pending = self._isolate(name, pending, summary, reject, exc)
                if self.cache is not None:
                    self.cache.remember({k: v for _, _, h in pending for k, v in h.items()})
                self._checkpoint(source, sha, last_line, summary, "running")
                if self.on_batch and pending:
                    self.on_batch(last_line)
                return
            new = {identity(e) for e in batch} - self._landed - set(known)
            if any(f.identities & new for f in flight):
                drain()  # it shares a not-yet-stored identity with a batch in flight: wait
            future = pool.submit(self.sink.send, batch)  # type: ignore[union-attr]
            flight.append(_Flight(future, pending, last_line, new, cut, refused[0]))
            drain(keep=self.parallel - 1)

        try:
            for item in read_source(source, path):
                if item.line and item.line <= resume_line:
                    continue
                if isinstance(item, Problem):
                    reject(item)
                    continue
                summary.read += 1
                try:
                    entries = self._map(source, item, ctx)
                except MappingError as exc:
                    reject(Problem(name, item.line, exc.field, exc.reason))
                    continue
                except Exception as exc:  # one row must never end the run
                    reject(Problem(name, item.line, UNREADABLE, unexpected(exc)))
                    continue
                if entries is None:
                    summary.skipped_no_consent += 1
                    continue
                summary.resources += len(entries)
                candidates.append((item, entries))
                state["size"] += len(entries)
                state["last_line"] = item.line
                if state["size"] >= self.batch_size:
                    flush()
                if self.progress:
                    self.progress.update(name, summary)
            flush()
            drain()
        except BaseException:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            self._fail(run_id)
            raise
        if pool is not None:
            pool.shutdown(wait=True)
        if self.progress:
            self.progress.update(name, summary, final=True)
        if self.db is not None and not dry:
            self._checkpoint(source, sha, state["last_line"], summary, "done")
            self._finish(run_id, summary)
        return summary

    def _isolate(
        self,
        name: str,
        pending: Pending,
        summary: Summary,
        reject: Callable[[Problem], None],
        refused: Refused,
    ) -> Pending:
        """The server refused a whole transaction (`refused`: a 4xx, or a 500 it repeats while
        handling others): split it in halves until each refused row stands alone, report those
        rows and send the rest. Rows are the unit (a row's entries reference each other), so a
        batch of n rows with one bad row costs about 2·log2(n) sends, not n; a 413 (too large)
        is answered by the same splitting. A row that stands alone with a 5xx is reported only
        when the server handled some other part of its batch (stored it, or refused it with a
        4xx): when every part fails with a 5xx, the server is at fault, not the rows, and the
        run stops to resume later (TransportError). Returns the rows the server acknowledged."""
        done: Pending = []
        failed: list[tuple[Record, Refused]] = []  # lone rows the server failed on (5xx)
        handled = False  # the server stored, or refused with a 4xx, some part of the batch
        todo: deque[tuple[Pending, Refused | None]] = deque([(pending, refused)])
        while todo:
            part, why = todo.popleft()
            if why is None:
                try:
                    out = self.sink.send([e for _, es, _ in part for e in es])  # type: ignore[union-attr]
                except Refused as exc:
                    why = exc
                else:
                    summary.sent += len(part)
                    self._count(summary, out)
                    done.extend(part)
                    handled = True
                    continue
            if len(part) > 1:
                half = len(part) // 2
                todo.extendleft([(part[half:], None), (part[:half], None)])
                continue
            if why.status >= 500:
                failed.append((part[0][0], why))
                continue
            handled = True
            self._reject_refused(name, part[0][0], why, reject)
        if failed and not handled and len(pending) > 1:
            raise TransportError(
                f"the PHR server failed on every row of a batch (HTTP {failed[0][1].status})"
            )
        for rec, why in failed:
            self._reject_refused(name, rec, why, reject)
        return done

    @staticmethod
    def _reject_refused(
        name: str, rec: Record, why: Refused, reject: Callable[[Problem], None]
    ) -> None:
        field = why.elements[0][:64] if why.elements else UNREADABLE
        reject(Problem(name, rec.line, field, f"refused by the PHR server ({why.reason})"))

    @staticmethod
    def _count(summary: Summary, out: Outcomes) -> None:
        summary.created += out.created
        summary.updated += out.updated
        summary.unchanged += out.unchanged

    # --- bookkeeping in the connector database ------------------------------------------------

    def _start(self, path: Path, source: str, sha: str) -> tuple[int, dict[str, Any] | None, int]:
        if self.db is None:
            raise RuntimeError("no connector database")
        with self.db.session() as s:
            cp = s.scalars(
                select(Checkpoint).where(
                    Checkpoint.municipality_code == self.municipality,
                    Checkpoint.source == source,
                    Checkpoint.file_sha256 == sha,
                )
            ).one_or_none()
            resume, restored = 0, None
            if cp is None:
                s.add(
                    Checkpoint(
                        municipality_code=self.municipality,
                        source=source,
                        file_sha256=sha,
                        status="running",
                        line=0,
                        counters="{}",
                    )
                )
            elif cp.status == "running" and cp.line > 0:
                resume, restored = cp.line, json.loads(cp.counters or "{}") or None
            else:
                cp.status, cp.line, cp.counters = "running", 0, "{}"
            run = Run(municipality_code=self.municipality, source=source, file_name=path.name[:255])
            s.add(run)
            s.flush()
            return resume, restored, run.id

    def _checkpoint(self, source: str, sha: str, line: int, summary: Summary, status: str) -> None:
        if self.db is None:
            return
        with self.db.session() as s:
            cp = s.scalars(
                select(Checkpoint).where(
                    Checkpoint.municipality_code == self.municipality,
                    Checkpoint.source == source,
                    Checkpoint.file_sha256 == sha,
                )
            ).one()
            cp.line, cp.status, cp.counters = line, status, json.dumps(asdict(summary))

    def _row_error(self, run_id: int, p: Problem) -> None:
        if self.db is None:
            raise RuntimeError("no connector database")
        with self.db.session() as s:
            s.add(
                RowErrorRow(
                    run_id=run_id,
                    file_name=p.file[:255],
                    line=p.line,
                    field=p.field[:64],
                    reason=p.reason,
                )
            )

    def _fail(self, run_id: int | None) -> None:
        if self.db is None or run_id is None:
            return
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status = "failed"
                run.finished_at = datetime.now(UTC)

    def _finish(self, run_id: int | None, summary: Summary) -> None:
        if self.db is None or run_id is None:
            return
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status = "rejections" if summary.rejected else "done"
                run.finished_at = datetime.now(UTC)
                run.rows_read = summary.read
                run.rows_sent = summary.sent
                run.rows_rejected = summary.rejected
