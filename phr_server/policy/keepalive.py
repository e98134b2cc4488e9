"""GET over kept-alive HTTP connections, for the consent decisions a read asks for.

A consent answer is cached only a few seconds (the revocation bound), so a busy PHR server
asks the consent service many times a second. `urllib.request.urlopen` opens a new TCP
connection for each call (and the consent service a new handler for it): on the benchmark that
cost more CPU, on both sides, than the answer itself (bench/fhir_api.md). Here idle connections
are kept (at most `size`) and reused; a kept connection the server has closed meanwhile is
retried once on a fresh one (a GET: nothing happened on the server). Where a proxy is
configured for the URL (`http_proxy` and friends), `urlopen` keeps doing the call, as before.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass

# What a kept connection that the server closed while it was idle raises on its next use.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class Pool:
    """Kept-alive connections to one origin (`base_url`'s scheme, host and port)."""

    def __init__(self, base_url: str, timeout: float, size: int) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.timeout, self.size = timeout, size
        proxies = urllib.request.getproxies()
        self.proxied = parts.scheme in proxies and not urllib.request.proxy_bypass(parts.netloc)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        ref = weakref.ref(self)
        # A forked worker must not share its parent's sockets.
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    def get(self, path: str, headers: dict[str, str]) -> Answer:
        """GET `path` (the whole path and query); OSError, TimeoutError, HTTPException as
        `http.client` raises them."""
        conn, reused = self._take()
        try:
            try:
                answer, keep = _get(conn, path, headers)
            except _STALE:
                if not reused:
                    raise
                conn.close()
                conn = self._new()
                answer, keep = _get(conn, path, headers)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._give(conn)
        else:
            conn.close()
        return answer

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def _new(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str]
) -> tuple[Answer, bool]:
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    return Answer(resp.status, body), not resp.will_close


def _forget(ref: weakref.ref[Pool]) -> None:
    pool = ref()
    if pool is not None:
        pool._idle = []  # the parent's sockets stay the parent's (not closed here)
        pool._lock = threading.Lock()
