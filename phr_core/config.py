"""Configuration from environment variables (and an optional `.env` file).

Every variable is listed in `VARIABLES`, which is also the source of the README's table and of
`phr config show`, so the documentation cannot drift from what the code reads.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from phr_core import secrets
from phr_core.errors import ConfigError as ConfigError  # its name for everyone: config's
from phr_core.secrets import DEV_PREFIX as DEV_PREFIX
from phr_core.services import SERVICES, ServiceSpec, Variable

DEFAULT_CONSENT_API_PORT = 8007
SAME_AS_CONSENT_URL = "$PHR_CONSENT_URL"  # PHR_CONSENT_API_URL's "one pool" value, literally


def _service_variables() -> list[Variable]:
    out: list[Variable] = []
    seen: set[str] = set()
    for s in SERVICES:
        p = s.env_prefix
        out.append(
            Variable(
                f"PHR_{p}_DATABASE_URL",
                f"sqlite:///$PHR_VAR_DIR/{s.name}.db",
                f"{s.title}: SQLAlchemy database URL (falls back to PHR_DATABASE_URL)",
            )
        )
        out.append(Variable(f"PHR_{p}_PORT", str(s.default_port), f"{s.title}: local port"))
        out.append(
            Variable(
                s.url_env,
                f"http://127.0.0.1:$PHR_{p}_PORT",
                f"{s.title}: public base URL"
                + (" (the OpenID issuer identifier)" if s.name == "idp" else ""),
            )
        )
        for sec in s.secrets:
            if sec.env in seen:  # a secret shared by several services is listed once
                continue
            seen.add(sec.env)
            out.append(
                Variable(
                    sec.env,
                    "generated into $PHR_VAR_DIR/secrets in development",
                    f"{sec.purpose}; or give {sec.env}_FILE, a file holding it",
                    secret=True,
                )
            )
        out.extend(s.options)
    return out


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "PHR_ENV",
        "development",
        "`development` or `production`; production refuses development keys, "
        "missing secrets and plain-http public URLs off loopback",
    ),
    Variable("PHR_VAR_DIR", "./var", "folder for SQLite files and development keys (git-ignored)"),
    Variable("PHR_HOST", "127.0.0.1", "address the local servers bind to"),
    Variable("PHR_WORKERS", "2", "gunicorn worker processes per service"),
    Variable("PHR_LOG_LEVEL", "INFO", "log level: DEBUG, INFO, WARNING, ERROR"),
    Variable(
        "PHR_LOG_FORMAT",
        "json in production, text in development",
        "`json`: one JSON object per log line (time, level, service, event, request id), for "
        "a log collector; `text`: the same as a readable line (docs/operations.md, Logs)",
    ),
    Variable(
        "PHR_MAX_REQUEST_BYTES",
        "16777216",
        "largest request body any service accepts (bytes, chunked bodies too); larger ones "
        "answer 413 in the service's error format",
    ),
    Variable(
        "PHR_MAX_URL_BYTES",
        "8000",
        "longest URL (path and query) any service accepts, at most 8150; longer ones answer 414 "
        "in the service's error format",
    ),
    Variable(
        "PHR_METRICS_TOKEN",
        "(unset)",
        "bearer token a Prometheus server sends to read every service's `/metrics`; unset: "
        "`/metrics` answers only direct loopback clients (none through a proxy); or give "
        "PHR_METRICS_TOKEN_FILE, a file holding it",
        secret=True,
    ),
    Variable(
        "PHR_BACKUP_PASSPHRASE",
        "(unset)",
        "passphrase `phr db backup` encrypts with and `phr db restore` needs (at least 12 "
        "characters; keep it apart from the backups: docs/operations.md); unset: asked for on "
        "the terminal; or give PHR_BACKUP_PASSPHRASE_FILE, a file holding it",
        secret=True,
    ),
    Variable(
        "PHR_DATABASE_URL",
        "(unset)",
        "one database for every service (each keeps its own tables); "
        "a per-service URL below wins over it",
    ),
    *_service_variables(),
    Variable(
        "PHR_DEV_SECOND_CITY",
        "072010",
        "`phr dev run` only: the second demo municipality, with its own PHR server and "
        "connector (own SQLite databases and keys under $PHR_VAR_DIR/city-<code>); `off` "
        "runs the first city alone",
    ),
    Variable(
        "PHR_DEV_SECOND_FHIR_PORT", "8012", "`phr dev run` only: the second city's PHR server"
    ),
    Variable(
        "PHR_DEV_SECOND_CONNECTOR_PORT", "8014", "`phr dev run` only: the second city's connector"
    ),
)


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses, the only places plain http is acceptable."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the installed psycopg 3 driver for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; build it with `load_settings()`."""

    env: str
    var_dir: Path
    host: str
    workers: int
    log_level: str
    ports: Mapping[str, int]
    urls: Mapping[str, str]
    database_urls: Mapping[str, str]
    environ: Mapping[str, str] = field(repr=False)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def log_format(self) -> str:
        """PHR_LOG_FORMAT (phr_core.logs): `json` or `text`, by default json in production."""
        raw = self.environ.get("PHR_LOG_FORMAT", "").strip().lower()
        return raw or ("json" if self.production else "text")

    @property
    def issuer(self) -> str:
        return self.urls["idp"]

    @property
    def consent_api_port(self) -> int:
        """Where the consent decision API's own worker pool listens (PHR_CONSENT_API_PORT)."""
        return _int(self.environ, "PHR_CONSENT_API_PORT", DEFAULT_CONSENT_API_PORT)

    @property
    def consent_api_url(self) -> str:
        """Where PHR servers and the IdP call the consent decision API: PHR_CONSENT_API_URL,
        else the decision pool on this host. Tokens for it are still addressed to
        `urls["consent"]` + `/api`: this is a network location, not an identity."""
        raw = self.environ.get("PHR_CONSENT_API_URL", "").strip()
        if raw == SAME_AS_CONSENT_URL:  # one pool for the portal and the API
            return self.urls["consent"]
        return (raw or f"http://127.0.0.1:{self.consent_api_port}").rstrip("/")

    @property
    def secrets_dir(self) -> Path:
        return self.var_dir / "secrets"

    def secret(self, name: str) -> str:
        """The value of a secret: from the environment, a `_FILE`, or (development only) a
        key generated once into `var/secrets/`. Raises ConfigError when none can be had."""
        value = secrets.lookup(name, self.environ)
        if value is not None:
            return value
        if self.production:
            raise ConfigError(f"{name} is not set (nor {name}_FILE)")
        return secrets.ensure_dev_secret(self.secrets_dir, name)

    def option(self, name: str) -> str:
        """A service option (see ServiceSpec.options): the environment's value or the default,
        with `$PHR_VAR_DIR` expanded."""
        for var in VARIABLES:
            if var.name == name:
                value = self.environ.get(name, "").strip() or var.default
                return value.replace("$PHR_VAR_DIR", str(self.var_dir))
        raise KeyError(f"{name} is not a documented setting")

    def production_problems(self, services: tuple[ServiceSpec, ...] = SERVICES) -> list[str]:
        """Everything that makes this configuration unfit for production, one line each."""
        problems: list[str] = []
        for s in services:
            url = self.urls[s.name]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append(f"{s.url_env}={url!r} is not an absolute http(s) URL")
            elif parts.scheme == "http" and not is_loopback_host(parts.hostname):
                problems.append(
                    f"{s.url_env}={url!r} uses http:// on a non-loopback host; use https://"
                )
            for sec in s.secrets:
                problems.extend(secrets.production_problems(sec.env, self.environ, self.var_dir))
        if any(s.name in ("fhir", "idp") for s in services):
            api = urlsplit(self.consent_api_url)
            if api.scheme == "http" and not is_loopback_host(api.hostname):
                problems.append(
                    f"PHR_CONSENT_API_URL={self.consent_api_url!r} uses http:// on a "
                    "non-loopback host; use https://"
                )
        return problems

    def require_production_ready(self, services: tuple[ServiceSpec, ...] = SERVICES) -> None:
        """In production mode, refuse to go on while any problem remains."""
        if not self.production:
            return
        problems = self.production_problems(services)
        if problems:
            lines = "\n  - ".join(problems)
            raise ConfigError(f"refusing to start in production mode:\n  - {lines}")


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration from `environ` (default: the process environment)."""
    env_map: Mapping[str, str] = dict(os.environ if environ is None else environ)
    mode = env_map.get("PHR_ENV", "development").strip().lower() or "development"
    if mode not in ("development", "production"):
        raise ConfigError(f"PHR_ENV={mode!r} must be `development` or `production`")
    var_dir = Path(env_map.get("PHR_VAR_DIR", "") or "var").expanduser().resolve()
    host = env_map.get("PHR_HOST", "") or "127.0.0.1"
    shared_db = env_map.get("PHR_DATABASE_URL", "").strip()

    ports: dict[str, int] = {}
    urls: dict[str, str] = {}
    dbs: dict[str, str] = {}
    for s in SERVICES:
        port = _int(env_map, f"PHR_{s.env_prefix}_PORT", s.default_port)
        ports[s.name] = port
        urls[s.name] = (env_map.get(s.url_env, "") or f"http://127.0.0.1:{port}").rstrip("/")
        db = env_map.get(f"PHR_{s.env_prefix}_DATABASE_URL", "").strip() or shared_db
        dbs[s.name] = normalize_database_url(db or f"sqlite:///{var_dir / (s.name + '.db')}")

    _int(env_map, "PHR_CONSENT_API_PORT", DEFAULT_CONSENT_API_PORT)  # refuse a bad one early
    level = (env_map.get("PHR_LOG_LEVEL", "") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"PHR_LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
    log_format = env_map.get("PHR_LOG_FORMAT", "").strip().lower()
    if log_format not in ("", "json", "text"):
        raise ConfigError(f"PHR_LOG_FORMAT={log_format!r} must be json or text")
    return Settings(
        env=mode,
        var_dir=var_dir,
        host=host,
        workers=_int(env_map, "PHR_WORKERS", 2),
        log_level=level,
        ports=ports,
        urls=urls,
        database_urls=dbs,
        environ=env_map,
    )
