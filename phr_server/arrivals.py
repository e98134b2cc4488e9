"""Telling the consent service whose records just arrived, so the person (and each guardian of
a child) finds a notice in the portal's inbox and the city's "last update" moves.

After a connector's write that changed something (created or updated resources, not an
unchanged re-run), the Patients touched are turned into their (municipality, pseudonymous code)
pairs (the identifier index, nothing decrypted) and posted, after the commit, to
`{PHR_CONSENT_URL}/api/v1/arrivals` by a background thread with the PHR server's own
client-credentials token (scope `consent/arrivals.write`), so a bulk load never waits on it.
Best effort: if the consent service cannot be reached the notice is lost (logged); the
records themselves are stored either way."""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable

from flask import current_app, g
from sqlalchemy import select
from sqlalchemy.orm import Session

from phr_server.models import TokenIndex, table_of

log = logging.getLogger(__name__)

SCOPE = "consent/arrivals.write"
PSEUDONYM_PREFIX = "urn:phr-platform:pseudonym:"
T = table_of(TokenIndex)


def codes_of(s: Session, patient_ids: Iterable[str]) -> dict[str, set[str]]:
    """municipality → pseudonymous codes of these Patients."""
    ids = sorted(set(patient_ids))
    out: dict[str, set[str]] = {}
    for i in range(0, len(ids), 500):
        rows = s.execute(
            select(T.c.system, T.c.code).where(
                T.c.resource_type == "Patient",
                T.c.param == "identifier",
                T.c.resource_id.in_(ids[i : i + 500]),
                T.c.system.startswith(PSEUDONYM_PREFIX),
            )
        )
        for system, code in rows:
            out.setdefault(system[len(PSEUDONYM_PREFIX) :], set()).add(code)
    return out


class ArrivalNotifier:
    """A queue and one daemon thread posting each batch of arrivals."""

    def __init__(self, consent_url: str, token: Callable[[], str | None], timeout: float = 5):
        self.url = consent_url.rstrip("/") + "/api/v1/arrivals"
        self.token = token
        self.timeout = timeout
        self._queue: queue.Queue[tuple[str, list[str]]] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, arrived: dict[str, set[str]]) -> None:
        for city, codes in arrived.items():
            try:
                self._queue.put_nowait((city, sorted(codes)))
            except queue.Full:
                log.warning("arrival notices dropped: the queue is full")
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued batch was posted (tests, shutdown)."""
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            city, codes = self._queue.get()
            try:
                self._post(city, codes)
            finally:
                self._queue.task_done()

    def _post(self, city: str, codes: list[str]) -> None:
        try:
            token = self.token()
        except Exception as exc:
            log.warning("arrival notice not sent: no token (%s)", type(exc).__name__)
            return
        req = urllib.request.Request(  # noqa: S310 - the configured consent URL
            self.url,
            data=json.dumps({"municipality": city, "codes": codes}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - as above
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            log.warning("arrival notice not sent (%s)", type(exc).__name__)


def collect(s: Session, patient_ids: set[str]) -> None:
    """Inside a write's transaction: remember whose records changed (when a notifier runs)."""
    if patient_ids and current_app.extensions.get("phr_arrivals") is not None:
        g.phr_arrived = codes_of(s, patient_ids)


def flush(status: int) -> None:
    """After the write's answer: post what `collect` remembered, if the write succeeded."""
    arrived = g.pop("phr_arrived", None)
    notifier = current_app.extensions.get("phr_arrivals")
    if arrived and notifier is not None and status < 300:
        notifier.send(arrived)
