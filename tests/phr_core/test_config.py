"""Configuration: defaults, overrides, and what production mode refuses (and says so)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phr_core.config import ConfigError, load_settings
from phr_core.services import SERVICES, get_service

GOOD_SECRET = "x" * 20 + "production-secret-value-0123456789"


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PHR_ENV": "production",
        "PHR_VAR_DIR": str(tmp_path / "var"),
        "PHR_ISSUER": "https://idp.city.example.jp",
        "PHR_FHIR_URL": "https://fhir.city.example.jp",
        "PHR_CONSENT_URL": "https://portal.city.example.jp",
        "PHR_CONNECTOR_URL": "https://connector.city.example.jp",
    }
    for s in SERVICES:
        for sec in s.secrets:
            env[sec.env] = GOOD_SECRET + sec.env
    env.update(overrides)
    return env


def test_defaults_put_every_database_under_var(tmp_path: Path) -> None:
    s = load_settings({"PHR_VAR_DIR": str(tmp_path)})
    assert s.env == "development"
    for svc in SERVICES:
        assert s.database_urls[svc.name] == f"sqlite:///{tmp_path / (svc.name + '.db')}"
        assert s.urls[svc.name] == f"http://127.0.0.1:{svc.default_port}"
    assert len(set(s.ports.values())) == len(SERVICES)


def test_service_url_wins_over_shared_and_postgres_urls_use_psycopg(tmp_path: Path) -> None:
    s = load_settings(
        {
            "PHR_VAR_DIR": str(tmp_path),
            "PHR_DATABASE_URL": "postgresql://u:p@db/shared",
            "PHR_IDP_DATABASE_URL": "postgres://u:p@db/idp",
        }
    )
    assert s.database_urls["idp"] == "postgresql+psycopg://u:p@db/idp"
    assert s.database_urls["fhir"] == "postgresql+psycopg://u:p@db/shared"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PHR_ENV": "staging"}, "PHR_ENV"),
        ({"PHR_WORKERS": "many"}, "PHR_WORKERS"),
        ({"PHR_IDP_PORT": "-3"}, "PHR_IDP_PORT"),
        ({"PHR_LOG_LEVEL": "LOUD"}, "PHR_LOG_LEVEL"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_complete_production_config_has_no_problems(tmp_path: Path) -> None:
    s = load_settings(production_env(tmp_path))
    assert s.production_problems() == []
    s.require_production_ready()


def test_production_names_each_missing_secret(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["PHR_FHIR_DATA_KEY"]
    del env["PHR_IDP_SECRET_KEY"]
    with pytest.raises(ConfigError) as err:
        load_settings(env).require_production_ready()
    text = str(err.value)
    assert "PHR_FHIR_DATA_KEY is not set" in text
    assert "PHR_IDP_SECRET_KEY is not set" in text
    assert "PHR_CONSENT_SECRET_KEY" not in text


def test_production_refuses_development_keys(tmp_path: Path) -> None:
    dev = load_settings({"PHR_VAR_DIR": str(tmp_path / "var")})
    dev_value = dev.secret("PHR_IDP_SECRET_KEY")  # generated into var/secrets
    copied = load_settings(production_env(tmp_path, PHR_IDP_SECRET_KEY=dev_value))
    assert any("PHR_IDP_SECRET_KEY is a development key" in p for p in copied.production_problems())

    env = production_env(tmp_path)
    del env["PHR_CONSENT_SECRET_KEY"]
    env["PHR_CONSENT_SECRET_KEY_FILE"] = str(tmp_path / "var" / "secrets" / "PHR_IDP_SECRET_KEY")
    problems = load_settings(env).production_problems()
    assert any("PHR_CONSENT_SECRET_KEY_FILE points at a development key" in p for p in problems)


def test_production_accepts_secret_files_and_rejects_short_ones(tmp_path: Path) -> None:
    good = tmp_path / "fhir.key"
    good.write_text(GOOD_SECRET + "\n")
    env = production_env(tmp_path, PHR_IDP_SECRET_KEY="short")
    del env["PHR_FHIR_DATA_KEY"]
    env["PHR_FHIR_DATA_KEY_FILE"] = str(good)
    s = load_settings(env)
    assert s.secret("PHR_FHIR_DATA_KEY") == GOOD_SECRET
    assert s.production_problems() == [
        "PHR_IDP_SECRET_KEY is too short: use at least 32 random characters"
    ]
    env["PHR_FHIR_DATA_KEY_FILE"] = str(tmp_path / "missing.key")
    assert "cannot be read" in " ".join(load_settings(env).production_problems())


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://idp.city.example.jp", True),
        ("http://127.0.0.1:8001", True),
        ("http://localhost:8001", True),
        ("http://[::1]:8001", True),
        ("http://idp.city.example.jp", False),
        ("http://10.0.0.5", False),
        ("idp.city.example.jp", False),
    ],
)
def test_production_refuses_plain_http_issuer_off_loopback(
    tmp_path: Path, issuer: str, ok: bool
) -> None:
    s = load_settings(production_env(tmp_path, PHR_ISSUER=issuer))
    problems = s.production_problems((get_service("idp"),))
    assert (problems == []) is ok
    if not ok:
        assert problems[0].startswith("PHR_ISSUER=")


def test_production_never_generates_secrets(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["PHR_IDP_SECRET_KEY"]
    with pytest.raises(ConfigError, match="PHR_IDP_SECRET_KEY is not set"):
        load_settings(env).secret("PHR_IDP_SECRET_KEY")
    assert not (tmp_path / "var" / "secrets").exists()


@pytest.mark.parametrize("service", [s.name for s in SERVICES])
def test_app_factory_refuses_bad_production_config(tmp_path: Path, service: str) -> None:
    from tests.conftest import create_app

    svc = get_service(service)
    env = production_env(tmp_path, **{svc.url_env: "http://public.example.jp"})
    with pytest.raises(ConfigError, match=svc.url_env):
        create_app(svc, load_settings(env))


def test_the_consent_decision_api_url(tmp_path: Path) -> None:
    """PHR servers and the IdP call the decision API's own pool (PHR_CONSENT_API_PORT) unless
    PHR_CONSENT_API_URL says otherwise; `$PHR_CONSENT_URL` means the portal's pool."""
    base = {"PHR_VAR_DIR": str(tmp_path), "PHR_CONSENT_URL": "https://portal.example.jp"}
    assert load_settings(base).consent_api_url == "http://127.0.0.1:8007"
    pool = load_settings({**base, "PHR_CONSENT_API_PORT": "9107"})
    assert pool.consent_api_url == "http://127.0.0.1:9107"
    same = load_settings({**base, "PHR_CONSENT_API_URL": "$PHR_CONSENT_URL"})
    assert same.consent_api_url == "https://portal.example.jp"
    own = load_settings({**base, "PHR_CONSENT_API_URL": "https://consent-api.example.jp/"})
    assert own.consent_api_url == "https://consent-api.example.jp"
    plain = load_settings(
        {**base, "PHR_ENV": "production", "PHR_CONSENT_API_URL": "http://consent-api.example.jp"}
    )
    assert any("PHR_CONSENT_API_URL" in p for p in plain.production_problems())
    with pytest.raises(ConfigError, match="PHR_CONSENT_API_PORT"):
        load_settings({**base, "PHR_CONSENT_API_PORT": "port"})


def test_production_refuses_a_secret_whose_space_splits_it_into_short_keys(
    tmp_path: Path,
) -> None:
    """Rotatable secrets are read as several keys separated by spaces (issue 20): an existing
    passphrase with spaces would silently become a few short keys, the newest one in use."""
    passphrase = "correct horse battery staple, long enough in total"
    s = load_settings(production_env(tmp_path, PHR_IDP_SECRET_KEY=passphrase))
    assert s.production_problems() == [
        "PHR_IDP_SECRET_KEY holds several keys separated by spaces and one is shorter than 32 "
        "characters: a secret must not contain spaces (each key is a long random string)"
    ]
    rotated = f"{GOOD_SECRET}new {GOOD_SECRET}old"
    assert (
        load_settings(production_env(tmp_path, PHR_IDP_SECRET_KEY=rotated)).production_problems()
        == []
    )
