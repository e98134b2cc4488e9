"""The files around the code stay true to it: docker-compose, the README's configuration table,
the two set-up commands, the declared dependencies, lint, formatting and type checking."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from phr_core.config import VARIABLES
from phr_core.services import SERVICES
from tests.imports import absolute_imports

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = [
    "phr_core",
    "launcher",
    "idp",
    "phr_server",
    "consent",
    "portal",
    "connectors",
    "federation",
]
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


def _dev_tool(name: str) -> str:
    tool = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert tool, f"{name} is a dev dependency: pip install -e '.[dev]'"
    return tool


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([_dev_tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    """Type checking of every package, configured in pyproject.toml ([tool.mypy]). Cold (a
    fresh clone) it is the suite's second-longest test; .ci/run runs mypy before the suite,
    beside its waiting steps, so that here it reads that run's cache."""
    result = subprocess.run([_dev_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level names of what the packages import from outside the standard library and
    themselves (module level and inside functions), each with the files importing it."""
    found: dict[str, set[str]] = {}
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            for name in absolute_imports(path):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in CODE_DIRS or top == "__future__":
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


# Import names of the optional extras' libraries ([project.optional-dependencies]), which this
# environment may lack: the reader mode's pyscard.
OPTIONAL_PROVIDERS: dict[str, list[str]] = {"smartcard": ["pyscard"]}
# Not on PyPI: vsmartcard's card API, which only Debian ships (python3-virtualsmartcard,
# installed by .ci/run; the virtual JPKI card of the reader tests, idp/card/virtual_reader).
SYSTEM_PACKAGES = {"virtualsmartcard"}


def test_every_imported_library_is_declared() -> None:
    """What the code imports is declared in pyproject.toml's dependencies, not merely
    brought along by another library (joserfc came only through Authlib once)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    specs = [
        *project["dependencies"],
        *(s for name, e in extras.items() if name != "dev" for s in e),
    ]
    declared = {_normalized(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}
    # Optional extras may be absent from this environment, so their import names are named here.
    providers = {**OPTIONAL_PROVIDERS, **importlib.metadata.packages_distributions()}
    imports = _third_party_imports()
    assert {"flask", "sqlalchemy", "joserfc"} <= set(imports)  # the scan sees real imports
    undeclared = {
        name: sorted(files)[:3]
        for name, files in imports.items()
        if name not in SYSTEM_PACKAGES
        and not any(_normalized(d) in declared for d in providers.get(name, [name]))
    }
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


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


# A type: ignore comment with its error codes, then whatever follows on the line (the reason).
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$")


def test_every_type_ignore_says_why() -> None:
    """A silenced type error names its code and carries its reason after it
    (`# type: ignore[attr-defined]  # SQLAlchemy's Result has rowcount at run time`)."""
    bare: list[str] = []
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = TYPE_IGNORE.search(line)
                if m and (not m.group(1) or not m.group(2).strip(" #-:()")):
                    bare.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bare, "type: ignore without a code and a reason:\n" + "\n".join(bare)
