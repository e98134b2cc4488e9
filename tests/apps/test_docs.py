"""docs/apps.md says what works: its scope table uses the consent screen's own words, and the
shell blocks marked `<!-- test: NAME -->` run as written (bash, curl, jq) against the sandbox,
with only the loopback ports changed to the test's."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from phr_core.scope_words import describe
from tests.apps.conftest import Sandbox
from tests.conftest import IN_CI

DOC = Path(__file__).resolve().parents[2] / "docs" / "apps.md"


def _blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- test: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S)
    return dict(found)


def test_scope_table_uses_the_consent_screen_words() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|", DOC.read_text("utf-8"), re.M)
    assert any("?category=" in r[0] for r in rows)
    scopes = [r for r in rows if "/" in r[0] or r[0] in ("openid", "offline_access")]
    assert len(scopes) >= 10
    for escaped, ja, en in scopes:
        scope = escaped.replace("\\|", "|")  # a table cell escapes the pipe
        assert describe(scope, "ja") == ja.strip(), scope
        assert describe(scope, "en") == en.strip(), scope


def test_marked_blocks_exist() -> None:
    assert set(_blocks()) == {"dynamic-registration", "oauth-error", "fhir-error"}


def _run(sb: Sandbox, name: str, tmp_path: Path) -> str:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            reason = f"{tool} is not installed (.ci/run installs it)"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
    script = _blocks()[name]
    ports = {"8001": sb.idp, "8002": sb.fhir, "8003": sb.portal}
    for port, url in ports.items():
        script = script.replace(f"http://127.0.0.1:{port}", url)
    # The guide runs from the repository with its `.venv`; here the same `phr` of this Python.
    phr = tmp_path / ".venv" / "bin" / "phr"
    phr.parent.mkdir(parents=True)
    phr.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m launcher.cli "$@"\n')
    phr.chmod(phr.stat().st_mode | stat.S_IXUSR)
    repo = str(DOC.parents[1])
    env = {**sb.env, "PATH": "/usr/bin:/bin:/usr/local/bin", "PYTHONPATH": repo}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_dynamic_registration_commands(sandbox: Sandbox, tmp_path: Path) -> None:
    out = _run(sandbox, "dynamic-registration", tmp_path).splitlines()
    assert out == ["予防接種スケジュール", "予防接種スケジュール 2", "204"]
    registered = json.loads((tmp_path / "my-app.json").read_text("utf-8"))
    assert registered["client_id"].startswith("dyn-")
    assert registered["subject_type"] == "pairwise"
    assert "client_secret" not in registered  # a public client


def test_oauth_error_command(sandbox: Sandbox, tmp_path: Path) -> None:
    body = json.loads(_run(sandbox, "oauth-error", tmp_path))
    assert body["error"] == "invalid_grant" and body["error_description"]


def test_fhir_error_command(sandbox: Sandbox, tmp_path: Path) -> None:
    body = json.loads(_run(sandbox, "fhir-error", tmp_path))
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "login"
    assert body["issue"][0]["diagnostics"] == "an access token is required (Bearer or DPoP)"


def test_lifetimes_and_limits_match_the_code() -> None:
    """The guide's numbers are the IdP's constants (a change there must change the guide)."""
    from idp import limits
    from idp.context import ACCESS_TOKEN_TTL, CODE_TTL, ID_TOKEN_TTL, REFRESH_TOKEN_TTL

    text = DOC.read_text(encoding="utf-8")
    kinds = "authorization code|access token|ID token|refresh token"
    rows = dict(re.findall(rf"^\| ({kinds}) \| ([^|]+) \|", text, re.M))

    def words(delta: object) -> str:
        seconds = int(delta.total_seconds())  # type: ignore[attr-defined]
        if seconds % 86400 == 0:
            return f"{seconds // 86400} days"
        return f"{seconds // 60} minutes"

    assert rows["authorization code"].strip() == words(CODE_TTL)
    assert rows["access token"].strip() == words(ACCESS_TOKEN_TTL)
    assert rows["ID token"].strip() == words(ID_TOKEN_TTL)
    assert rows["refresh token"].strip() == words(REFRESH_TOKEN_TTL)
    _, failures, window = limits.TOKEN_ENDPOINT
    assert f"{failures} failed attempts" in text and window.total_seconds() == 60
    _, failures, window = limits.SIGN_IN
    assert failures == 5 and "five failed card signatures" in text
    assert f"{int(window.total_seconds() // 60)} minutes" in text
    _, failures, window = limits.SOURCE
    assert f"{failures} failed attempts a minute" in text and window.total_seconds() == 60
    _, failures, window = limits.CARD_SOURCE
    assert f"{failures} bad card answers within {int(window.total_seconds() // 60)} minutes" in text
