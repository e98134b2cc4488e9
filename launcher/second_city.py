"""The development setup's second municipality (`phr dev run`): its own PHR server and connector,
the same code as the first city's run with an environment of their own, so the two-city
federation on a laptop is the shape of two real cities, each running its own PHR server.

What the second city shares with the first: the IdP, the consent service and portal, the
federation anchor, and the access-token sealing key and pairwise key of that one IdP. What is
its own: ports, public URLs, SQLite databases (`$PHR_VAR_DIR/city-<code>/`), the PHR server's
master data key, client secret and federation key, the connector's pseudonym key, signing key
and federation key (`$PHR_VAR_DIR/secrets/city-<code>/`), client ids `phr-server-<code>` and
`connector-<code>`.
"""

from __future__ import annotations

from pathlib import Path

from launcher import demo
from phr_core import migrations, secrets
from phr_core.config import ConfigError, Settings, load_settings
from phr_core.demo_data import DEMO_MUNICIPALITIES, DemoMunicipality
from phr_core.services import get_service

OFF = "off"
# The second city's own secrets; every other one is the first city's (shared platform keys).
OWN_SECRETS = (
    "PHR_FHIR_DATA_KEY",
    "PHR_FHIR_CLIENT_SECRET",
    "PHR_FHIR_FEDERATION_KEY",
    "PHR_FHIR_TOKEN_DECRYPTION_KEY",  # tokens for one city's server never open at the other
    "PHR_CONNECTOR_PSEUDONYM_KEY",
    "PHR_CONNECTOR_SIGNING_KEY",
    "PHR_CONNECTOR_FEDERATION_KEY",
)


def municipality(settings: Settings) -> DemoMunicipality | None:
    """The second demo city, or None when PHR_DEV_SECOND_CITY is `off` (or in production)."""
    code = settings.option("PHR_DEV_SECOND_CITY").strip()
    if settings.production or code.lower() == OFF:
        return None
    if code == settings.option("PHR_CONNECTOR_MUNICIPALITY"):
        raise ConfigError(f"PHR_DEV_SECOND_CITY={code} is the first city; choose another or `off`")
    known = DEMO_MUNICIPALITIES.get(code)
    if known is None:
        raise ConfigError(
            f"PHR_DEV_SECOND_CITY={code!r}: choose one of {', '.join(DEMO_MUNICIPALITIES)} or `off`"
        )
    return known


def folder(settings: Settings, code: str) -> Path:
    return settings.var_dir / f"city-{code}"


def environ(settings: Settings, code: str) -> dict[str, str]:
    """The environment variables that make a PHR server and a connector the second city's
    (added over the first city's environment)."""
    fhir_port = int(settings.option("PHR_DEV_SECOND_FHIR_PORT"))
    connector_port = int(settings.option("PHR_DEV_SECOND_CONNECTOR_PORT"))
    data = folder(settings, code)
    keys = settings.secrets_dir / f"city-{code}"
    env = {
        "PHR_FHIR_PORT": str(fhir_port),
        "PHR_FHIR_URL": f"http://127.0.0.1:{fhir_port}",
        "PHR_FHIR_DATABASE_URL": f"sqlite:///{data / 'fhir.db'}",
        "PHR_FHIR_MUNICIPALITIES": code,
        "PHR_FHIR_CLIENT_ID": f"phr-server-{code}",
        "PHR_CONNECTOR_PORT": str(connector_port),
        "PHR_CONNECTOR_URL": f"http://127.0.0.1:{connector_port}",
        "PHR_CONNECTOR_DATABASE_URL": f"sqlite:///{data / 'connector.db'}",
        "PHR_CONNECTOR_MUNICIPALITY": code,
        "PHR_CONNECTOR_CLIENT_ID": f"connector-{code}",
        "PHR_CONNECTOR_INBOX": str(data / "inbox"),
    }
    for name in OWN_SECRETS:
        env[name] = ""  # never the first city's, even when that one is set in the environment
        env[name + "_FILE"] = str(keys / name)
    return env


def settings_of(settings: Settings) -> Settings | None:
    """The second city's settings (its secrets made on first use), or None when it is off."""
    city = municipality(settings)
    if city is None:
        return None
    env = environ(settings, city.code)
    folder(settings, city.code).mkdir(parents=True, exist_ok=True)
    for name in OWN_SECRETS:
        secrets.ensure_dev_secret(Path(env[name + "_FILE"]).parent, name)
    return load_settings({**settings.environ, **env})


def load_demo(
    settings: Settings, *, family: bool = False, city: Settings | None = None
) -> dict[str, int]:
    """The second city's share of the demo data, after `launcher.demo.load_all`: its PHR
    server's and connector's schemas and data, its clients at the IdP, the anchor vouching for
    its services, the consent service's municipality and (with `family`) the moved family.
    `city`: the second city's settings when not `settings_of(settings)` (tests put its PHR
    server on a database of their own)."""
    second = city or settings_of(settings)
    if second is None:
        return {}
    for name in ("fhir", "connector"):
        migrations.upgrade(get_service(name), second.database_urls[name])
    return demo.load_second_city(settings, second, family=family)
