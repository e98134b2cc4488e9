"""Over-long URLs under gunicorn, as the runner starts each service: up to gunicorn's request
line limit the app refuses (414 from phr_core.request_limits), beyond it gunicorn does
(phr_core.gunicorn_workers); either way the answer is in the service's own error format."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from launcher.runner import Target, gunicorn_command
from phr_core.config import Settings
from phr_core.services import get_service


def _raw_get(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            headers = dict(
                line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
            )
            length = {k.lower(): v for k, v in headers.items()}.get("content-length")
            if length is not None and len(body) >= int(length):
                break
    status = int(head.split(b" ", 2)[1])
    return status, {k.lower(): v for k, v in headers.items()}, body


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "gunicorn stopped"
        try:
            if _raw_get(port, "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail("the service never answered /healthz")


@pytest.mark.parametrize("service", ["fhir", "idp", "consent"])
def test_overlong_urls_answer_in_the_services_format_under_gunicorn(
    migrated: Settings, service: str, tmp_path: Path
) -> None:
    s = migrated
    target = Target.of(get_service(service), s)
    env = {**os.environ, **s.environ, "PHR_WORKERS": "1"}
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(gunicorn_command(target, s), env=env, stdout=log, stderr=log)
    try:
        _wait_ready(proc, target.port)
        app_refuses = "/x?q=" + "a" * 8100  # over PHR_MAX_URL_BYTES (8000), under gunicorn's line
        gunicorn_refuses = "/x?q=" + "a" * 9000  # over gunicorn's 8190-byte request line
        for url in (app_refuses, gunicorn_refuses):
            status, headers, body = _raw_get(target.port, url)
            assert status == 414, body[:200]
            if service == "fhir":
                assert headers["content-type"].startswith("application/fhir+json")
                outcome = json.loads(body)
                assert outcome["resourceType"] == "OperationOutcome"
                assert outcome["issue"][0]["code"] == "too-long"
            elif service == "idp":
                assert headers["content-type"].startswith("application/json")
                assert set(json.loads(body)) == {"error", "error_description"}
            else:  # the portal's page, Japanese first
                assert headers["content-type"].startswith("text/html")
                assert "長すぎます" in body.decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
