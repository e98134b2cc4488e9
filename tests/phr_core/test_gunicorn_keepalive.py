"""A kept-alive connection outlives a client's pause under gunicorn, as the runner starts a
threaded service (phr_core.gunicorn_conf's `keepalive`): with gunicorn's default (2 s) the
server closed it after 2-3 s, and a request sent on it just then was lost (the soak's connection
resets, bench/soak.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from launcher.runner import Target, gunicorn_command
from phr_core.config import Settings
from phr_core.services import get_service

PAUSE_S = 4.0  # longer than gunicorn's default keep-alive (2 s) plus its 1 s poll


def _get(sock: socket.socket, path: str) -> bytes:
    """One HTTP/1.1 GET on `sock`, kept alive; the whole response (headers and body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _connect_when_ready(proc: subprocess.Popen[bytes], port: int) -> socket.socket:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn stopped"
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            time.sleep(0.3)
    pytest.fail("the service never accepted a connection")


def test_a_threaded_service_keeps_an_idle_connection_through_a_clients_pause(
    migrated: Settings, tmp_path: Path
) -> None:
    s = migrated
    target = Target.of(get_service("fhir"), s)
    assert target.threads > 1  # gthread: the worker that keeps connections alive
    env = {**os.environ, **s.environ, "PHR_WORKERS": "1"}
    with (tmp_path / "gunicorn.log").open("wb") as log:
        proc = subprocess.Popen(gunicorn_command(target, s), env=env, stdout=log, stderr=log)
        try:
            with _connect_when_ready(proc, target.port) as sock:
                first = _get(sock, "/healthz")
                assert first.startswith(b"HTTP/1.1 200"), first[:200]
                assert b"connection: close" not in first.lower()
                time.sleep(PAUSE_S)
                second = _get(sock, "/healthz")  # empty when the server had closed it
                assert second.startswith(b"HTTP/1.1 200"), second[:200]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
