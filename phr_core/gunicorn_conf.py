"""gunicorn's settings for every service (the runner starts it with
`--config python:phr_core.gunicorn_conf`): its own lines (workers booting and stopping) in the
platform's log format, no access log of its own (the app writes it: phr_core.logs), a
finished worker's gauge values dropped from the pool's metrics (phr_core.metrics), and idle
connections kept longer than the clients keep them (`keepalive`)."""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn import glogging
from prometheus_client import multiprocess

from phr_core import logs, metrics
from phr_core.config import load_settings
from phr_core.services import SERVICES

accesslog = None  # the app's access line (phr_core.logs) replaces gunicorn's

# Seconds a gthread worker keeps an idle HTTP/1.1 connection open (the sync worker closes each
# connection after its response and ignores this). A request that a client sends on a kept-alive
# connection just as the server closes it for idleness is lost: the client gets a reset or an
# empty answer, and must not resend a POST (a refresh grant, a card signature). No timeout
# removes that race, but the side that closes an idle connection first never meets it, so the
# server waits longer than its clients pause: gunicorn's default, 2 s, is shorter than a person
# between two pages, an app between two token requests, a card signature in the middle of a
# sign-in, or HAProxy's pooled server connections (`phr dev run --replicas`); 75 s is nginx's
# own default and above the idle limit of the usual reverse proxies (nginx's upstream pool:
# 60 s). An idle connection costs a descriptor in the worker's poller, no thread; beyond
# `worker_connections` (1000) gunicorn answers with "Connection: close"; a stopping worker still
# closes idle ones within 2 s (gunicorn >= 27; older ones at once).
keepalive = 75


class Logger(glogging.Logger):
    """gunicorn's logger, writing in PHR_LOG_FORMAT like the apps."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The master never loads the app: name the service after the app's package.
        package = str(cfg.proc_name or "-").split(".", 1)[0]
        names = [s.name for s in SERVICES if package in (s.package, s.web_package)]
        logs.name_process(names[0] if names else package)
        fmt = logs.formatter(load_settings().log_format)
        for handler in self.error_log.handlers:
            handler.setFormatter(fmt)
        if not any(isinstance(f, _NoRequestData) for f in self.error_log.filters):
            self.error_log.addFilter(_NoRequestData())


logger_class = Logger


class _NoRequestData(logging.Filter):
    """gunicorn's lines about a request it could not handle quote what the caller sent (its
    address, request line or header; the URI with its query: codes, tokens, identifiers):
    keep what happened, drop what was sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for start in _REQUEST_LINES:
            if message.startswith(start):
                record.msg, record.args = f"{start} (details withheld: caller data)", ()
        return True


_REQUEST_LINES = ("Invalid request", "Error handling request")


def child_exit(_server: Any, worker: Any) -> None:
    """A worker that ended leaves the gauges (`livesum`): its values are no longer live."""
    if os.environ.get(metrics.MULTIPROC_VARIABLE):
        multiprocess.mark_process_dead(worker.pid)
