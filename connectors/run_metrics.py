"""What a connector run leaves for Prometheus: a file in the text format, written (atomically)
when `phr connector run` ends, for node_exporter's textfile collector.

The connector is a batch job, not a server a Prometheus could scrape while it runs; the
textfile collector is the standard way for such a job. The file holds the last run (when,
how it ended, its rows) and carries over from the file before it what must outlive one run:
the time of the last run that completed, and the totals of runs and rows (counters).

Outcomes: `ok`; `rejected` (completed, but rows or files were rejected: see the report);
`stopped` (the IdP or the PHR server could not be reached: the next run resumes); `failed` (an
unexpected error). A run that completed (`ok`, `rejected`) counts as a success for
`phr_connector_last_success_timestamp_seconds`, the figure the "has not succeeded in 26 h"
alert watches (docs/alerts/phr.rules.yml).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from connectors.report import Summary

OK, REJECTED, STOPPED, FAILED = "ok", "rejected", "stopped", "failed"
COMPLETED = (OK, REJECTED)
ROW_KINDS = ("read", "sent", "rejected", "skipped_no_consent", "skipped_unchanged")
OFF = "off"


@dataclass
class LastRun:
    """One run's figures; `outcome` stays `failed` unless the run says otherwise."""

    municipality: str
    total: Summary
    outcome: str = FAILED
    failed_files: int = 0
    started: float = field(default_factory=time.time)

    def finish(self, failed_files: int) -> None:
        """The run went through every file."""
        self.failed_files = failed_files
        self.outcome = REJECTED if (self.total.rejected or failed_files) else OK

    def write(self, path: Path) -> None:
        """Write the file, carrying over the totals and last success of the one before."""
        before = _previous(path)
        now = time.time()
        registry = CollectorRegistry()
        city = self.municipality
        runs = Counter(
            "phr_connector_runs",
            "Connector runs, by outcome",
            ["municipality", "outcome"],
            registry=registry,
        )
        for outcome in (OK, REJECTED, STOPPED, FAILED):
            carried = before.get(("phr_connector_runs_total", (city, outcome)), 0.0)
            runs.labels(city, outcome).inc(carried + (outcome == self.outcome))
        rows = Counter(
            "phr_connector_rows",
            "Rows of every run, by kind",
            ["municipality", "kind"],
            registry=registry,
        )
        last_rows = Gauge(
            "phr_connector_last_run_rows",
            "Rows of the last run, by kind",
            ["municipality", "kind"],
            registry=registry,
        )
        for kind in ROW_KINDS:
            value = getattr(self.total, kind)
            carried = before.get(("phr_connector_rows_total", (city, kind)), 0.0)
            rows.labels(city, kind).inc(carried + value)
            last_rows.labels(city, kind).set(value)
        gauge = _gauges(registry)
        gauge["phr_connector_last_run_timestamp_seconds"].labels(city).set(now)
        gauge["phr_connector_last_run_duration_seconds"].labels(city).set(now - self.started)
        gauge["phr_connector_last_run_files_failed"].labels(city).set(self.failed_files)
        gauge["phr_connector_last_run_success"].labels(city).set(self.outcome in COMPLETED)
        success = before.get(("phr_connector_last_success_timestamp_seconds", (city,)))
        if self.outcome in COMPLETED:
            success = now
        if success is not None:  # none yet: absent, which the alert also catches
            gauge["phr_connector_last_success_timestamp_seconds"].labels(city).set(success)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)


GAUGES = {
    "phr_connector_last_run_timestamp_seconds": "When the last run ended (Unix time)",
    "phr_connector_last_run_duration_seconds": "How long the last run took",
    "phr_connector_last_run_files_failed": "Files the last run could not load",
    "phr_connector_last_run_success": "1 when the last run completed (ok or rejected), else 0",
    "phr_connector_last_success_timestamp_seconds": "When the last completed run ended",
}


def _gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    return {
        name: Gauge(name, doc, ["municipality"], registry=registry) for name, doc in GAUGES.items()
    }


def _previous(path: Path) -> dict[tuple[str, tuple[str, ...]], float]:
    """The samples of the file a run before left: (name, label values) → value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = tuple(v for k, v in sorted(s.labels.items()) if k != "municipality")
                out[(s.name, (s.labels.get("municipality", ""), *labels))] = s.value
    except ValueError:  # a damaged file: start the totals again rather than fail the run
        return {}
    return out
