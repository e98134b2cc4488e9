"""gunicorn's own warnings about a bad request quote the caller's request line and address,
and its "Error handling request" names the URI with its query (codes, tokens): under
phr_core.gunicorn_conf they keep what happened and drop what the caller sent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gunicorn.config import Config

from phr_core import gunicorn_conf


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_gunicorn_error_lines_carry_no_request_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path / "var"))
    logger = gunicorn_conf.Logger(Config())
    kept = _Kept()
    logger.error_log.addHandler(kept)
    try:
        logger.warning(
            "Invalid request from ip=203.0.113.7: Invalid HTTP request line: "
            "'GET /Patient/person-4711?code=SECRET-CODE HTTP/1.1\\nforged'"
        )
        try:
            raise OSError("broken pipe")
        except OSError:
            logger.exception("Error handling request %s %s", "GET", "/token?code=SECRET-CODE")
        logger.info("Booting worker with pid: %s", 42)
    finally:
        logger.error_log.removeHandler(kept)
    assert len(kept.lines) == 3
    for line in kept.lines[:2]:
        for leaked in ("203.0.113.7", "person-4711", "SECRET-CODE", "forged"):
            assert leaked not in line
    assert kept.lines[0].startswith("Invalid request")
    assert kept.lines[1].startswith("Error handling request")
    assert kept.lines[2] == "Booting worker with pid: 42"  # its other lines are unchanged
