"""Real headless Chromium for page tests (Debian's `chromium`, driven by Playwright).

Outside CI a missing browser skips the test with the reason; in CI it is a failure, because
`.ci/run` installs Chromium."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import IN_CI

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("PHR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        reason = "headless Chromium not installed (apt-get install chromium); .ci/run installs it"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    with serving(make_server("127.0.0.1", 0, app, threaded=True)) as url:
        yield url


@contextmanager
def serving(server: Any) -> Iterator[str]:
    """Run a loopback `server` (socketserver's serve_forever, shutdown) in a thread; yields its
    base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@contextmanager
def browser_page(locale: str = "ja-JP") -> Iterator[object]:
    """A fresh page in a fresh headless Chromium."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale=locale)
            yield context.new_page()
        finally:
            browser.close()
