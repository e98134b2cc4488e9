"""The consent decisions a read asks for go over kept-alive connections (policy/keepalive.py):
one TCP connection serves call after call, a connection the consent service closed while idle
is replaced without failing the read's decision, and answers keep their meaning (404 is no
grant, other statuses fail closed)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from phr_server.policy import ConsentUnavailable, HttpConsentDirectory
from tests.browser import serving


@contextmanager
def _consent_service(ports: list[int], status: dict[str, str]) -> Iterator[str]:
    """A consent stand-in that keeps connections alive, as the consent service under gunicorn
    does (werkzeug's development server closes every connection)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per answer, sent at once: headers and body written apart on a kept
        # connection would wait for the client's delayed ACK (Nagle), 40 ms a call.
        wbufsize = -1
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            ports.append(self.client_address[1])
            gid = self.path.rsplit("/", 1)[-1]
            code, data = 200, {"id": gid, "status": status["g1"], "subject": "s", "client_id": "c"}
            if gid == "broken":
                code, data = 500, {"error": "boom"}
            elif gid != "g1":
                code, data = 404, {"error": "no such grant"}
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with serving(srv) as url:
        yield url
    srv.server_close()


def test_calls_share_one_connection_and_a_revocation_still_shows() -> None:
    ports: list[int] = []
    status = {"g1": "active"}
    with _consent_service(ports, status) as url:
        d = HttpConsentDirectory(url, ttl=0)  # every call a miss: asks the service
        assert d.grant("g1", "t").active()  # type: ignore[union-attr]
        status["g1"] = "revoked"
        assert not d.grant("g1", "t").active()  # type: ignore[union-attr]
        assert d.grant("nope", "t") is None  # 404: no grant, as before
        with pytest.raises(ConsentUnavailable, match="answered 500"):
            d.grant("broken", "t")  # fails closed, as before
        assert d.grant("g1", "t") is not None
    assert d.calls == 5
    assert len(ports) == 5 and len(set(ports)) == 1  # one TCP connection for all five


@contextmanager
def _closes_after_each_answer() -> Iterator[tuple[str, list[int]]]:
    """A consent stand-in that answers one request per connection, then closes it without
    saying so (as a server whose keep-alive timeout ran out while the connection was idle)."""
    srv = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                body = b'{"id": "g1", "status": "active", "subject": "s", "client_id": "c"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                time.sleep(0.05)  # then closed, unannounced

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}", accepted
    finally:
        stop.set()
        t.join(5)
        srv.close()


def test_a_connection_closed_while_idle_is_replaced() -> None:
    with _closes_after_each_answer() as (url, accepted):
        d = HttpConsentDirectory(url, ttl=0)
        for _ in range(3):
            grant = d.grant("g1", "t")
            assert grant is not None and grant.active()
            time.sleep(0.1)  # the stand-in has closed the kept connection by now
    assert len(accepted) == 3  # each call after the first found its kept connection dead


def test_a_proxy_configured_for_the_consent_url_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    d = HttpConsentDirectory("http://consent.invalid", ttl=0, timeout=0.5)
    with pytest.raises(ConsentUnavailable, match="unreachable"):
        d.grant("g1", "t")  # through the (dead) proxy, as urllib does: fails closed
