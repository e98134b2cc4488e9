"""The `phr` command: groups per service, help a city's IT staff can follow, db commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.cli import main
from phr_core.config import Settings
from phr_core.services import SERVICES


def test_help_lists_a_group_per_service() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for group in ("idp", "fhir", "consent", "connector", "db", "dev", "config"):
        assert f"  {group} " in result.output


@pytest.mark.parametrize("group", [s.name for s in SERVICES])
def test_every_service_can_be_served(group: str) -> None:
    result = CliRunner().invoke(main, [group, "serve", "--help"])
    assert result.exit_code == 0
    assert "gunicorn" in result.output and "PHR_WORKERS" in result.output


def test_db_upgrade_then_current(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    before = runner.invoke(main, ["db", "current"])
    assert before.exit_code == 0 and before.output.count("(empty)") == len(SERVICES)
    up = runner.invoke(main, ["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "password" not in up.output.lower()
    after = runner.invoke(main, ["db", "current"])
    assert after.output.count("up to date") == len(SERVICES)
    down = runner.invoke(main, ["db", "downgrade", "connector", "base"])
    assert down.exit_code == 0
    assert runner.invoke(main, ["db", "current"]).output.count("up to date") == len(SERVICES) - 1


def test_config_check_lists_production_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PHR_ISSUER", "http://idp.city.example.jp")
    for s in SERVICES:
        for sec in s.secrets:
            monkeypatch.delenv(sec.env, raising=False)
    result = CliRunner().invoke(main, ["config", "check", "--production"])
    assert result.exit_code == 1
    assert "PHR_ISSUER='http://idp.city.example.jp' uses http://" in result.output
    assert "PHR_CONSENT_SECRET_KEY is not set" in result.output


def test_env_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PHR_WORKERS=7\nPHR_LOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("PHR_LOG_LEVEL", "ERROR")
    # Recorded so that teardown removes what the .env file puts into os.environ.
    monkeypatch.setenv("PHR_WORKERS", "1")
    monkeypatch.delenv("PHR_WORKERS")
    result = CliRunner().invoke(main, ["--env-file", str(env_file), "config", "show"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(ln.split()[:2] == ["PHR_WORKERS", "7"] for ln in lines)
    assert any(ln.split()[:2] == ["PHR_LOG_LEVEL", "ERROR"] for ln in lines)


def test_dev_keys_refused_in_production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PHR_ENV", "production")
    result = CliRunner().invoke(main, ["dev", "keys"])
    assert result.exit_code != 0
    assert "never made in production" in result.output
    assert not (tmp_path / "secrets").exists()


def test_config_show_prints_the_urls_each_service_really_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One PHR_DATABASE_URL points every service at PostgreSQL: `config show` says so for each
    (not the SQLite default), password hidden; public URLs follow the ports; a per-service URL
    wins and is shown as set."""
    for name in [k for k in __import__("os").environ if k.startswith("PHR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PHR_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PHR_DATABASE_URL", "postgresql://phr:s3cret@db.example:5432/phr")
    monkeypatch.setenv("PHR_CONNECTOR_DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("PHR_FHIR_PORT", "9102")
    monkeypatch.setenv("PHR_CONSENT_API_PORT", "9107")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = {
        line.split()[0]: line.split(None, 1)[1]
        for line in result.output.splitlines()
        if line.startswith("PHR_")
    }
    shared = "postgresql+psycopg://phr:***@db.example:5432/phr  (from PHR_DATABASE_URL)"
    for prefix in ("IDP", "FHIR", "CONSENT", "FEDERATION"):
        assert shown[f"PHR_{prefix}_DATABASE_URL"] == shared, shown
    assert shown["PHR_CONNECTOR_DATABASE_URL"] == f"sqlite:///{tmp_path}/c.db"
    assert "s3cret" not in result.output
    assert shown["PHR_FHIR_URL"] == "http://127.0.0.1:9102  (default)"
    assert shown["PHR_FHIR_PORT"] == "9102"
    assert shown["PHR_CONSENT_API_URL"] == "http://127.0.0.1:9107  (default)"
    assert shown["PHR_VAR_DIR"] == str(tmp_path)
    assert shown["PHR_FHIR_THREADS"] == "4  (default)"
