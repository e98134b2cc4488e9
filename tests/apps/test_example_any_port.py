"""`phr dev example --port N` as docs/apps.md writes it: the sandbox's demo app client is
registered for :8010, and starting the example on another port adds that port's redirect, so
its sign-in reaches the IdP's sign-in page instead of "redirect_uri is not registered"."""

from __future__ import annotations

import os
import signal
import subprocess
from urllib.parse import parse_qs, urlsplit

import requests

from idp.demo import DEMO_APP_ID, DEMO_APP_PORT
from tests.apps.conftest import TIMEOUT, Sandbox, _field, _wait_http
from tests.conftest import free_port
from tests.launcher.test_run import PHR
from tests.processes import stop


def test_the_example_signs_in_on_a_port_other_than_8010(sandbox: Sandbox) -> None:
    port = free_port()
    assert port != DEMO_APP_PORT
    app = f"http://127.0.0.1:{port}"
    env = {**os.environ, **sandbox.env}
    env.pop("APP_CLIENT_ID", None)  # the sandbox's own demo app client, as a developer has it
    example = subprocess.Popen(
        [*PHR, "dev", "example", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_http(app + "/", example)
        browser = requests.Session()
        start = browser.get(app + "/", timeout=TIMEOUT)
        login = browser.post(
            app + "/login", data={"csrf": _field(start.text, "csrf")},
            allow_redirects=False, timeout=TIMEOUT,
        )  # fmt: skip
        authorize = login.headers["Location"]
        query = parse_qs(urlsplit(authorize).query)
        assert query["client_id"] == [DEMO_APP_ID]
        assert query["redirect_uri"] == [f"{app}/callback"]
        at_idp = browser.get(authorize, allow_redirects=False, timeout=TIMEOUT)
        assert at_idp.status_code == 302, at_idp.text[:500]
        assert urlsplit(at_idp.headers["Location"]).path == "/login"
    finally:
        stop(example, signal.SIGINT, timeout=30)
