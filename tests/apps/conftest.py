"""The running sandbox (`phr dev run` with its demo family) and the example app (`phr dev
example`), both on loopback, the app registered statically through PHR_IDP_CLIENTS_FILE as
docs/apps.md describes (on a free port, so the test never collides with a developer's 8010)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, make_environ
from tests.test_run import PHR, _read_until, _start

APP_ID = "test-vaccination-app"
APP_NAME = "予防接種スケジュール（テスト）"


@dataclass
class Sandbox:
    env: dict[str, str]
    idp: str
    fhir: str
    portal: str
    app: str
    card: Path


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{url} exited early:\n{out}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    pytest.fail(f"{url} never answered")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    env = make_environ(tmp_path, "unused")
    del env["PHR_DATABASE_URL"]  # the embedded default, as a developer's first run
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps([{
            "client_id": APP_ID,
            "client_name": APP_NAME,
            "client_name#en": "Vaccination schedule (test)",
            "redirect_uris": [f"{app}/callback"],
            "post_logout_redirect_uris": [f"{app}/"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access launch/patient "
                     "patient/Patient.rs patient/Immunization.rs patient/Observation.rs",
            "purpose": "お子さまの予防接種の予定と成長の記録を表示するため",
            "purpose#en": "To show your child's vaccination schedule and growth",
        }], ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip
    env["PHR_IDP_CLIENTS_FILE"] = str(clients)
    platform = _start(env)
    example = None
    try:
        out = _read_until(platform, "Press Ctrl-C to stop.", timeout=120)
        line = next(x for x in out if x.startswith("sandbox: "))
        m = re.search(r"card (\S+) ", line)
        assert m, line
        example = subprocess.Popen(
            [*PHR, "dev", "example", "--port", str(port)],
            env={**os.environ, **env, "APP_CLIENT_ID": APP_ID},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_http(app + "/", example)
        yield Sandbox(
            env,
            f"http://127.0.0.1:{env['PHR_IDP_PORT']}",
            f"http://127.0.0.1:{env['PHR_FHIR_PORT']}",
            f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}",
            app,
            Path(m.group(1)),
        )
    finally:
        if example is not None:
            _stop(example)
        _stop(platform)
