"""The run command for real: migrations, dev keys, demo data, every service under gunicorn (and
the second demo city's PHR server and connector), the printed URLs answering, and a clean stop
on Ctrl-C."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from phr_core.demo_data import DEMO_MUNICIPALITY, SECOND_MUNICIPALITY
from phr_core.services import SERVICES
from tests.conftest import make_environ
from tests.processes import Lines, stop

PHR = [sys.executable, "-m", "launcher.cli"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*PHR, "dev", "run"],
        env={**os.environ, **env, "PHR_WORKERS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 90) -> list[str]:
    """The output up to `marker`; a process that does not print it in time is stopped (and
    whatever it started), and the test fails."""
    output = Lines.of(proc)
    lines = output.until(marker, timeout)
    if lines is None:
        with contextlib.suppress(AssertionError):
            stop(proc, timeout=20)
        pytest.fail(f"never printed {marker!r}; output:\n" + "\n".join(output.seen))
    return lines


@pytest.mark.slow
def test_run_serves_everything_and_stops_on_ctrl_c(tmp_path: Path, database_url: str) -> None:
    env = make_environ(tmp_path, database_url)
    del env["PHR_CONSENT_API_URL"]  # the real default: the decision API's own pool
    if database_url.startswith("sqlite"):
        del env["PHR_DATABASE_URL"]  # the embedded default: one SQLite file per service
    proc = _start(env)
    try:
        out = _read_until(proc, "Press Ctrl-C to stop.")
        urls = [m.group(0) for line in out for m in [re.search(r"http://\S+/$", line)] if m]
        # and the consent decision API's own pool, the development card authority, and the
        # second city's PHR server and connector
        assert len(urls) == len(SERVICES) + 4, out
        assert f"http://127.0.0.1:{env['PHR_CONSENT_API_PORT']}/" in urls
        authority = env["PHR_CARD_AUTHORITY_URL"] + "/"
        assert authority in urls
        second_fhir = f"http://127.0.0.1:{env['PHR_DEV_SECOND_FHIR_PORT']}/"
        second_connector = f"http://127.0.0.1:{env['PHR_DEV_SECOND_CONNECTOR_PORT']}/"
        assert second_fhir in urls and second_connector in urls
        assert any(SECOND_MUNICIPALITY.name_ja in line and second_fhir in line for line in out)
        for fhir, code in (
            (f"http://127.0.0.1:{env['PHR_FHIR_PORT']}/", DEMO_MUNICIPALITY.code),
            (second_fhir, SECOND_MUNICIPALITY.code),
        ):  # each server tells the federation whose records it holds
            status, jwt = _get(fhir + ".well-known/openid-federation")
            assert status == 200
            claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
            assert claims["metadata"]["oauth_resource"]["phr_municipalities"] == [code]
        for url in urls:
            status, _ = _get(url + "readyz")
            assert status == 200, url
            if url != authority:  # the services' start pages
                status, body = _get(url)
                assert status == 200 and body, url
        portal = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}/"
        assert urls[0] == portal  # the portal is listed first: it is where a person starts
        assert DEMO_MUNICIPALITY.name_ja in _get(portal)[1]
        if database_url.startswith("sqlite"):
            var = Path(env["PHR_VAR_DIR"])
            assert {p.name for p in var.glob("*.db")} == {f"{s.name}.db" for s in SERVICES}
            assert (var / "secrets" / "PHR_FHIR_DATA_KEY").exists()
            city = var / f"city-{SECOND_MUNICIPALITY.code}"  # its own databases and keys
            assert {p.name for p in city.glob("*.db")} == {"fhir.db", "connector.db"}
            assert (var / "secrets" / city.name / "PHR_FHIR_DATA_KEY").exists()
    finally:
        code, rest = stop(proc, signal.SIGINT, timeout=30)
    assert code == 0, rest
    assert "All services stopped." in rest
    for url in urls:  # nothing is left listening
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url + "healthz", timeout=2)  # noqa: S310


@pytest.mark.slow
def test_run_names_the_port_that_is_taken(tmp_path: Path) -> None:
    import socket

    env = make_environ(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(env["PHR_FHIR_PORT"])))
        busy.listen()
        result = subprocess.run(
            [*PHR, "dev", "run", "--no-demo"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "PHR_FHIR_PORT" in result.stderr and "already in use" in result.stderr


def test_serve_refuses_production_without_secrets(tmp_path: Path) -> None:
    env = make_environ(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", PHR_ENV="production")
    result = subprocess.run(
        [*PHR, "idp", "serve"],
        env={k: v for k, v in {**os.environ, **env}.items() if not k.endswith("_SECRET_KEY")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to start in production mode" in result.stderr
    assert "PHR_IDP_SECRET_KEY is not set" in result.stderr


def test_services_that_wait_on_others_run_threaded(tmp_path: Path) -> None:
    """The PHR server (PHR_FHIR_THREADS, default 4), the IdP (PHR_IDP_THREADS, 4), the portal
    (PHR_CONSENT_THREADS, 8) and the consent decision API's own pool (PHR_CONSENT_API_THREADS,
    8, on PHR_CONSENT_API_PORT) under gthread: a thread waiting on another service must not
    hold a whole worker. The others run gunicorn's sync worker; 1 thread is the sync worker; a
    bad value is refused."""
    from launcher.runner import Target, gunicorn_command
    from phr_core.config import ConfigError, load_settings
    from phr_core.services import get_service

    def commands(service: str, **env: str) -> list[list[str]]:
        s = load_settings(make_environ(tmp_path, f"sqlite:///{tmp_path}/x.db", **env))
        return [gunicorn_command(t, s) for t in Target.all_of(get_service(service), s)]

    from gunicorn.workers.gthread import ThreadWorker
    from gunicorn.workers.sync import SyncWorker

    from phr_core import gunicorn_workers

    def worker(cmd: list[str]) -> type:
        return getattr(gunicorn_workers, cmd[cmd.index("--worker-class") + 1].rsplit(".", 1)[1])

    def threads(cmd: list[str]) -> str | None:
        """gthread's thread count; None for a sync worker (each refusing in the service's
        own error format, phr_core.gunicorn_workers)."""
        if "--threads" not in cmd:
            assert issubclass(worker(cmd), SyncWorker)
            return None
        assert issubclass(worker(cmd), ThreadWorker)
        return cmd[cmd.index("--threads") + 1]

    assert [threads(c) for c in commands("fhir")] == ["4"]
    assert [threads(c) for c in commands("idp")] == ["4"]
    portal, api = commands("consent", PHR_CONSENT_API_PORT="18999")
    assert threads(portal) == "8" and portal[-1] == "portal.app:create_app()"
    assert threads(api) == "8" and api[-1] == "consent.app:create_api_app()"
    assert api[api.index("--bind") + 1] == "127.0.0.1:18999"
    assert [threads(c) for c in commands("connector")] == [None]
    assert [threads(c) for c in commands("fhir", PHR_FHIR_THREADS="1")] == [None]
    assert threads(commands("consent", PHR_CONSENT_API_THREADS="2")[1]) == "2"
    for name in ("PHR_FHIR_THREADS", "PHR_IDP_THREADS", "PHR_CONSENT_API_THREADS"):
        service = {"PHR_FHIR_THREADS": "fhir", "PHR_IDP_THREADS": "idp"}.get(name, "consent")
        for bad in ("many", "0", "100"):
            with pytest.raises(ConfigError, match=name):
                commands(service, **{name: bad})
