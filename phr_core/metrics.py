"""`/metrics` on every service, in the Prometheus text format (prometheus_client): how many
requests each route answered with which status, and how long they took.

Routes are counted by their template (`/api/v1/consents/<consent_id>/receipt`), never by the
path asked for, so no identifier of a person or a consent becomes a label, and a scan of random
URLs cannot grow the series without end (it is counted once, as `[unmatched]`).

Under gunicorn each worker is a process of its own: the runner gives every worker pool its own
`PROMETHEUS_MULTIPROC_DIR` (under $PHR_VAR_DIR/metrics/, emptied at start) and `/metrics`
sums the files of all of them, whichever worker answers. Without it (tests, one process) the
in-process registry answers.

Who may read it: with PHR_METRICS_TOKEN set, whoever sends it as a bearer token; without it,
only a client on this host's loopback that came through no proxy (no `Forwarded` or
`X-Forwarded-For` header), since a reverse proxy on the same host would otherwise make every
visitor look local.
"""

from __future__ import annotations

import hmac
import os
import time

from flask import Flask, Response, abort, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import Engine

from phr_core import secrets
from phr_core.config import Settings, is_loopback_host

ACCESS_VARIABLE = "PHR_METRICS_TOKEN"  # the bearer token's setting
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import
PATH = "/metrics"
UNMATCHED = "[unmatched]"
_STARTED = "phr_metrics_started"

REQUESTS = Counter(
    "phr_http_requests",
    "HTTP requests answered, by service, method, route template and status",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "phr_http_request_duration_seconds",
    "Time from the request reaching the app to its response, by route template and status",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# What the services count besides requests (docs/metrics.md). Gauges sum over the live workers
# of a pool (`livesum`); phr_core.gunicorn_conf drops a worker's values when it exits.
DB_POOL_CHECKED_OUT = Gauge(
    "phr_db_pool_checked_out",
    "Database connections in use (checked out of the pool), by service",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "phr_db_pool_size",
    "Database connections the pool keeps (beyond them it may open its overflow), by service",
    ["service"],
    multiprocess_mode="livesum",
)
AUDIT_BACKLOG = Gauge(
    "phr_audit_backlog_events",
    "AuditEvents waiting for the audit commit that runs now (phr_server.audit_batch)",
    multiprocess_mode="livesum",
)
CONSENT_CACHE = Counter(
    "phr_consent_cache_lookups",
    "Consent decision cache lookups: `consent` (the consent service's own cache) or `fhir` "
    "(the PHR server's cache of the decision API's answers), by result (hit, miss)",
    ["cache", "result"],
)
CARD_VERIFICATIONS = Counter(
    "phr_card_verifications",
    "Card responses verified at the IdP, by event (sign_in, enrollment) and outcome (ok or "
    "the refusal's code, as in the card audit)",
    ["event", "outcome"],
)


def watch_pool(engine: Engine, service: str) -> None:
    """Keep the pool gauges of `service` up to date as connections are checked out and in."""
    size = getattr(engine.pool, "size", None)  # a pool without one (SQLite in memory): 1
    DB_POOL_SIZE.labels(service).set(size() if callable(size) else 1)
    checked_out = DB_POOL_CHECKED_OUT.labels(service)
    # Counted here, not read from the pool: its `checkin` event fires before the connection
    # is back, so the pool's own count is one too high at that moment.
    event.listen(engine, "checkout", lambda *_: checked_out.inc())
    event.listen(engine, "checkin", lambda *_: checked_out.dec())


def install(app: Flask, settings: Settings) -> None:
    """Count and time every request of `app`, and serve `/metrics`."""
    service = app.extensions["phr_service"].name
    token = secrets.lookup(ACCESS_VARIABLE, settings.environ)

    @app.before_request
    def _start() -> None:
        g.setdefault(_STARTED, time.perf_counter())

    @app.after_request
    def _count(resp: Response) -> Response:
        started = g.get(_STARTED)
        rule = request.url_rule
        labels = (service, request.method, rule.rule if rule else UNMATCHED, str(resp.status_code))
        REQUESTS.labels(*labels).inc()
        if started is not None:
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
        return resp

    @app.get(PATH)
    def metrics() -> Response:
        if not allowed(token):
            abort(404)  # as if there were nothing here
        return Response(exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def allowed(token: str | None) -> bool:
    """The bearer token when one is configured, else a direct loopback client."""
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    forwarded = "Forwarded" in request.headers or "X-Forwarded-For" in request.headers
    return not forwarded and is_loopback_host(request.remote_addr)


def exposition() -> bytes:
    """Every worker's metrics in multiprocess mode, else this process's."""
    path = os.environ.get(MULTIPROC_VARIABLE)
    if not path:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)
