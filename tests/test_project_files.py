"""The files around the code stay true to it: docker-compose, the README's configuration table,
the two set-up commands, lint and formatting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from phr_core.config import VARIABLES
from phr_core.services import SERVICES

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ["phr_core", "idp", "phr_server", "consent", "connectors", "federation"]
DOCUMENTED = {v.name for v in VARIABLES}


def _variables_read_by_code() -> set[str]:
    found: set[str] = set()
    for d in CODE_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            # String literals only; names built from a prefix (PHR_{prefix}_PORT) are
            # listed in VARIABLES by the same loop that reads them.
            found |= set(re.findall(r"[\"'](PHR_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text()))
    return found


def _known(name: str) -> bool:
    return name in DOCUMENTED or (name.endswith("_FILE") and name[:-5] in DOCUMENTED)


def test_every_variable_in_the_code_is_documented() -> None:
    found = _variables_read_by_code()
    assert "PHR_ENV" in found and "PHR_FHIR_DATA_KEY" in found  # the scan sees real reads
    undocumented = sorted(v for v in found if not _known(v))
    assert undocumented == []


def test_readme_starts_with_the_two_commands_and_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [ln for ln in first_block.group(1).splitlines() if ln and not ln.startswith("#")]
    assert commands == ["make run", "make test"]
    assert readme.index("make run") < readme.index("## ")  # before any section
    table = re.search(r"<!-- config-table[^>]*-->\n(.*?)\n<!-- /config-table -->", readme, re.S)
    assert table is not None
    generated = CliRunner().invoke(main, ["config", "show", "--markdown"]).output.strip()
    assert table.group(1) == generated, "regenerate: phr config show --markdown"
    for var in VARIABLES:
        assert f"`{var.name}`" in readme, var.name


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.M)
    assert "initdb" in ci and "pg_ctl" in ci and "PHR_TEST_DATABASE_URLS" in ci


def test_compose_file_names_every_service_and_variable() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "postgres" in services
    assert "healthcheck" in services["postgres"]
    for spec in SERVICES:
        svc = services[spec.name]
        assert svc["build"] == "." and svc["image"] == "phr-platform:latest"
        assert svc["command"][:3] == ["phr", spec.name, "serve"]
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert str(spec.default_port) in " ".join(svc["healthcheck"]["test"])
        env = svc["environment"]
        assert env["PHR_ENV"] == "production"
        for name in env:
            assert _known(name), f"{spec.name}: unknown variable {name}"
        needed = [f"PHR_{spec.env_prefix}_DATABASE_URL", spec.url_env]
        needed += [s.env for s in spec.secrets]
        for name in needed:
            assert name in env or f"{name}_FILE" in env, f"{spec.name} lacks {name}"
        for secret in spec.secrets:
            path = env.get(f"{secret.env}_FILE", "")
            assert path.startswith("/run/secrets/")
            assert path.rsplit("/", 1)[1] in svc["secrets"]
    for name in services["idp"]["environment"]:
        assert name.startswith("PHR_")
    dockerfile = (ROOT / "Dockerfile").read_text()
    for pkg in CODE_DIRS:
        assert f"COPY {pkg} " in dockerfile


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_secrets_and_var_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/var/" in ignored and ".env" in ignored and "/secrets/" in ignored


# A noqa comment: its codes (S101, E501, ...), then whatever follows on the line (the reason).
NOQA = re.compile(r"#\s*noqa:\s*([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(.*)$")
NOQA_DIRS = [*CODE_DIRS, "bench", "examples"]


def _bare_security_noqas() -> list[str]:
    bare: list[str] = []
    for d in NOQA_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = NOQA.search(line)
                if not m or not any(
                    re.fullmatch(r"S[0-9]+", c.strip()) for c in m.group(1).split(",")
                ):
                    continue
                if not m.group(2).strip(" -:()"):
                    bare.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return bare


def test_every_security_noqa_says_why() -> None:
    """A silenced security rule (ruff S) carries its reason on the same line, after the codes
    (`# noqa: S310 - the configured consent URL`), so a reviewer can check it still holds."""
    bare = _bare_security_noqas()
    assert not bare, "security noqa without a reason:\n" + "\n".join(bare)
