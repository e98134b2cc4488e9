"""A connector run over export files: stream rows → consent gate → pseudonymise → map →
validate → batch → send → checkpoint. Rows of people without consent stop at the gate: they
are counted, never mapped, stored or sent. Bad rows go to the report (file, line, field,
reason) and the run goes on.

`Connector` holds what every file's run shares (consented codes, the register index, the sent
cache); `FileRun` is one file's run as named steps: `take` a row (gate and map), `cut` a batch
(drop what the server holds unchanged, validate), `send` it, and `complete` the batches in file
order (count, remember, checkpoint). Sending one transaction at a time and several in flight
share that one bookkeeping path: only the sender differs."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connectors.consent import ConsentSource, consent_epochs
from connectors.http import TransportError
from connectors.mapping.common import Context, Entry, MappingError
from connectors.pseudonym import Pseudonymizer
from connectors.register import ConsentedIndex
from connectors.report import Progress, Report, Summary
from connectors.run_log import RunLog
from connectors.sent_cache import SentCache, content_hash, identity
from connectors.source_registry import SOURCES, Source, detect_source, read_source
from connectors.sources.base import UNREADABLE, Problem, Record, unexpected
from connectors.transport import Outcomes, Refused, Sink
from connectors.validation import validate
from phr_core.db import Database

__all__ = [
    "Connector",
    "FileRun",
    "Progress",
    "Report",
    "Summary",
    "detect_source",
    "file_sha256",
    "read_source",
]

# Resources many batches carry (each batch is self-contained): once the server acknowledged
# one, later batches holding it may be in flight together (they update, never create, it).
SHARED = {"Patient", "Organization", "Coverage", "RelatedPerson"}

# Rows cut into a batch: the record, its entries, and identity → (owner code, content hash)
# for the sent cache.
Pending = list[tuple[Record, list[Entry], dict[str, tuple[str, str]]]]


@dataclass
class _Flight:
    """One batch sent (or being sent) to the server."""

    future: Future[Outcomes] | None  # None: every row of the batch was dropped before sending
    pending: Pending
    last_line: int
    identities: set[str]
    counters: dict[str, int]  # the run's counters when the batch was cut
    refused: int  # rows refused by the server before it was cut


class _SendNow:
    """Sends in the calling thread, answering with a finished Future like the thread pool, so
    one transaction at a time goes through the same bookkeeping as several in flight."""

    def submit(
        self, send: Callable[[list[Entry]], Outcomes], batch: list[Entry]
    ) -> Future[Outcomes]:
        done: Future[Outcomes] = Future()
        try:
            done.set_result(send(batch))
        except Exception as exc:  # handed over like the pool's: complete() raises it
            done.set_exception(exc)
        return done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


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
        self.consented: dict[str, set[str]] = {
            s.name: self.consent.codes(s.category) for s in SOURCES.values()
        }
        everyone = set().union(*self.consented.values())
        by_card = set().union(
            *(self.consented[s.name] for s in SOURCES.values() if s.needs_register)
        )
        self.index = ConsentedIndex.build(self.register_path, self.pseudo, everyone, by_card)
        self._validated: set[str] = set()
        self.landed: set[str] = set()  # shared identities (Patient, …) the server acknowledged
        self.cache: SentCache | None = None
        if self.db is not None and self.sink is not None and self.use_cache:
            self.cache = SentCache(self.db, self.municipality)
            self.cache.evict_except(everyone)
            categories = sorted({s.category for s in SOURCES.values()})
            self.cache.evict_reconsented(consent_epochs(self.consent, categories))

    # --- one record ---------------------------------------------------------------------------

    def map_record(self, source: Source, rec: Record, ctx: Context) -> list[Entry] | None:
        """The record's resources, or None when its person has not consented."""
        code = source.gate(ctx, self.pseudo, rec)
        if code is None:
            return None
        return source.map(ctx, self.pseudo, rec, code)

    def validate_entries(self, entries: list[Entry]) -> None:
        """Each resource against R4B; a Patient or Organization once per run (many rows carry
        the same one)."""
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
        name = source or detect_source(path)
        if name not in SOURCES:
            raise ValueError(f"{path.name}: cannot tell which source this file is")
        return FileRun(self, path, SOURCES[name]).run()


class FileRun:
    """One run over one export file (see the module's docstring for its steps)."""

    def __init__(self, conn: Connector, path: Path, source: Source) -> None:
        self.conn = conn
        self.path = path
        self.name = path.name
        self.source = source
        self.summary = Summary()
        self.ctx = Context(conn.municipality, conn.index, conn.consented[source.name])
        self.sha = file_sha256(path)
        self.dry = conn.sink is None
        self.log = (
            RunLog(conn.db, conn.municipality, source.name, self.sha)
            if conn.db is not None and not self.dry
            else None
        )
        self.resume_line = 0
        self.last_line = 0  # the last row taken into a batch
        self.size = 0  # resources in the batch being gathered
        self.candidates: list[tuple[Record, list[Entry]]] = []
        self.flight: deque[_Flight] = deque()
        self.refused = 0  # rows the server refused so far (counted when their batch completes)
        self.sender: ThreadPoolExecutor | _SendNow = _SendNow()

    def run(self) -> Summary:
        if self.log is not None:
            self.resume_line, restored = self.log.start(self.name)
            if restored:
                self.summary = Summary(**restored)
        self.last_line = self.resume_line
        if self.conn.parallel > 1 and not self.dry:
            self.sender = ThreadPoolExecutor(self.conn.parallel)
        try:
            for item in self.source.read(self.path):
                if item.line and item.line <= self.resume_line:
                    if isinstance(item, Record) and self.source.remember is not None:
                        self.source.remember(self.ctx, self.conn.pseudo, item)
                    continue
                if isinstance(item, Problem):
                    self.reject(item)
                else:
                    self.take(item)
            self.cut()
            self.drain()
        except BaseException:
            self.sender.shutdown(wait=True, cancel_futures=True)
            if self.log is not None:
                self.log.fail()
            raise
        self.sender.shutdown(wait=True)
        if self.conn.progress:
            self.conn.progress.update(self.name, self.summary, final=True)
        if self.log is not None:
            self.log.checkpoint(self.last_line, self.summary, "done")
            self.log.finish(self.summary)
        return self.summary

    def reject(self, p: Problem) -> None:
        self.summary.rejected += 1
        self.conn.report.add(p)
        if self.log is not None:
            self.log.row_error(p)

    def _reject_error(self, rec: Record, exc: Exception) -> None:
        """A row that failed mapping or validation: its field when known."""
        if isinstance(exc, MappingError):
            self.reject(Problem(self.name, rec.line, exc.field, exc.reason))
        else:  # one row must never end the run
            self.reject(Problem(self.name, rec.line, UNREADABLE, unexpected(exc)))

    # --- the steps ----------------------------------------------------------------------------

    def take(self, rec: Record) -> None:
        """One row through the gate and the mapping into the batch being gathered."""
        self.summary.read += 1
        try:
            entries = self.conn.map_record(self.source, rec, self.ctx)
        except Exception as exc:
            self._reject_error(rec, exc)
            return
        if entries is None:
            self.summary.skipped_no_consent += 1
            return
        self.summary.resources += len(entries)
        self.candidates.append((rec, entries))
        self.size += len(entries)
        self.last_line = rec.line
        if self.size >= self.conn.batch_size:
            self.cut()
        if self.conn.progress:
            self.conn.progress.update(self.name, self.summary)

    def cut(self) -> None:
        """Close the batch: rows the server holds unchanged are counted and dropped, the rest
        validated (when asked) and sent."""
        if not self.candidates:
            return
        cache = self.conn.cache
        known = cache.known(identity(e) for _, es in self.candidates for e in es) if cache else {}
        pending: Pending = []
        for rec, entries in self.candidates:
            hashes = _hashes(entries) if cache is not None else {}
            if cache is not None and all(known.get(k) == v[1] for k, v in hashes.items()):
                self.summary.skipped_unchanged += 1
                continue
            try:
                if self.conn.validate_resources:
                    self.conn.validate_entries(entries)
            except Exception as exc:
                self._reject_error(rec, exc)
                continue
            pending.append((rec, entries, hashes))
        self.candidates.clear()
        self.size = 0
        if not self.dry:
            self.send(pending, known)

    def send(self, pending: Pending, known: Iterable[str]) -> None:
        """Hand the batch to the sender. A batch that may create a resource a batch in flight
        creates too waits for the flights to land first."""
        counters, refused = asdict(self.summary), self.refused
        future = None
        new: set[str] = set()
        if pending:
            batch = [e for _, es, _ in pending for e in es]
            new = {identity(e) for e in batch} - self.conn.landed - set(known)
            if any(f.identities & new for f in self.flight):
                self.drain()
            future = self.sender.submit(self._send, batch)
        self.flight.append(_Flight(future, pending, self.last_line, new, counters, refused))
        self.drain(keep=self.conn.parallel - 1)

    def _send(self, batch: list[Entry]) -> Outcomes:
        if self.conn.sink is None:
            raise RuntimeError("a dry run sends nothing")
        return self.conn.sink.send(batch)

    def drain(self, keep: int = 0) -> None:
        while len(self.flight) > keep:
            self.complete(self.flight.popleft())

    def complete(self, f: _Flight) -> None:
        """Account for one sent batch, strictly in file order. The checkpoint's counters are
        those of the rows up to its line: reading counters as they were when the batch was cut,
        sending counters of the batches completed so far (all earlier)."""
        summary = self.summary
        before = summary.rejected
        done = f.pending
        try:
            out = f.future.result() if f.future is not None else None
            if out is not None:
                summary.sent += len(f.pending)
                _count(summary, out)
        except Refused as exc:
            done = self.isolate(f.pending, exc)
        self.refused += summary.rejected - before
        if self.conn.cache is not None:
            self.conn.cache.remember({k: v for _, _, h in done for k, v in h.items()})
        for _, es, _ in done:
            self.conn.landed.update(identity(e) for e in es if e.resource_type in SHARED)
        upto = Summary(**f.counters)
        upto.rejected += self.refused - f.refused
        for k in ("sent", "created", "updated", "unchanged"):
            setattr(upto, k, getattr(summary, k))
        if self.log is not None:
            self.log.checkpoint(f.last_line, upto, "running")
        if self.conn.on_batch and f.pending:
            self.conn.on_batch(f.last_line)

    def isolate(self, pending: Pending, refused: Refused) -> Pending:
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
                    out = self._send([e for _, es, _ in part for e in es])
                except Refused as exc:
                    why = exc
                else:
                    self.summary.sent += len(part)
                    _count(self.summary, out)
                    done.extend(part)
                    handled = True
                    continue
            if len(part) > 1:
                todo.extendleft((p, None) for p in reversed(_split(part, why)))
                continue
            if why.status >= 500:
                failed.append((part[0][0], why))
                continue
            handled = True
            self._reject_refused(part[0][0], why)
        if failed and not handled and len(pending) > 1:
            raise TransportError(
                f"the PHR server failed on every row of a batch (HTTP {failed[0][1].status})"
            )
        for rec, why in failed:
            self._reject_refused(rec, why)
        return done

    def _reject_refused(self, rec: Record, why: Refused) -> None:
        field = why.elements[0][:64] if why.elements else UNREADABLE
        self.reject(
            Problem(self.name, rec.line, field, f"refused by the PHR server ({why.reason})")
        )


def _split(part: Pending, why: Refused) -> list[Pending]:
    """A refused part of two or more rows, cut in file order: the rows holding an entry the
    refusal named, each alone, and the runs of other rows between them whole; in halves when
    the refusal names none of its rows, or all of them."""
    named = [any(e.full_url in why.named for e in es) for _, es, _ in part]
    if not any(named) or all(named):
        half = len(part) // 2
        return [part[:half], part[half:]]
    out: list[Pending] = []
    run: Pending = []
    for row, alone in zip(part, named, strict=True):
        if alone:
            if run:
                out.append(run)
                run = []
            out.append([row])
        else:
            run.append(row)
    if run:
        out.append(run)
    return out


def _hashes(entries: list[Entry]) -> dict[str, tuple[str, str]]:
    """identity → (owner, content hash) for the sent cache; the owner (the row's Patient code)
    lets a withdrawn person's entries be forgotten; an Organization belongs to nobody."""
    code = entries[0].value if entries[0].resource_type == "Patient" else ""
    return {
        identity(e): (code if e.resource_type != "Organization" else "", content_hash(e))
        for e in entries
    }


def _count(summary: Summary, out: Outcomes) -> None:
    summary.created += out.created
    summary.updated += out.updated
    summary.unchanged += out.unchanged
