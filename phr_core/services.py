"""The four services in one table, so the CLI, the runner, migrations and tests agree on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SecretSpec:
    """A secret a service refuses to run without in production."""

    env: str
    purpose: str


@dataclass(frozen=True)
class ServiceSpec:
    """Static facts about one service: names, default port, secrets, database tables."""

    name: str  # CLI group and short name: `phr <name> …`
    package: str  # Python package holding app.py, models.py, migrations/
    title: str
    env_prefix: str  # PHR_<prefix>_DATABASE_URL, PHR_<prefix>_PORT, …
    default_port: int
    url_env: str  # the environment variable holding its public base URL
    secrets: tuple[SecretSpec, ...] = ()
    session_key: str | None = None  # which of its secrets signs browser sessions, if any

    @property
    def version_table(self) -> str:
        """Each service keeps its own Alembic version table so all four can share one database."""
        return f"alembic_version_{self.name}"

    @property
    def app_factory(self) -> str:
        """The WSGI target gunicorn loads."""
        return f"{self.package}.app:create_app()"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="idp",
        package="idp",
        title="OpenID Connect provider (IdP)",
        env_prefix="IDP",
        default_port=8001,
        url_env="PHR_ISSUER",
        secrets=(SecretSpec("PHR_IDP_SECRET_KEY", "signs the IdP's browser sessions"),),
        session_key="PHR_IDP_SECRET_KEY",
    ),
    ServiceSpec(
        name="fhir",
        package="phr_server",
        title="FHIR R4 PHR server (secure DB)",
        env_prefix="FHIR",
        default_port=8002,
        url_env="PHR_FHIR_URL",
        secrets=(SecretSpec("PHR_FHIR_DATA_KEY", "encrypts stored FHIR resources (AES-256-GCM)"),),
    ),
    ServiceSpec(
        name="consent",
        package="consent",
        title="Consent service and citizen portal",
        env_prefix="CONSENT",
        default_port=8003,
        url_env="PHR_CONSENT_URL",
        secrets=(SecretSpec("PHR_CONSENT_SECRET_KEY", "signs the portal's browser sessions"),),
        session_key="PHR_CONSENT_SECRET_KEY",
    ),
    ServiceSpec(
        name="connector",
        package="connectors",
        title="Municipal connector",
        env_prefix="CONNECTOR",
        default_port=8004,
        url_env="PHR_CONNECTOR_URL",
    ),
)

BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}


def get_service(name: str) -> ServiceSpec:
    """Look a service up by its short name, with an error that lists the valid names."""
    try:
        return BY_NAME[name]
    except KeyError:
        valid = ", ".join(BY_NAME)
        raise KeyError(f"unknown service {name!r}; choose one of: {valid}") from None
