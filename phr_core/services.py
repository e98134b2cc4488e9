"""The services in one table, so the CLI, the runner, migrations and tests agree on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One documented environment variable. A default may say `$PHR_VAR_DIR`, which
    `Settings.option()` expands."""

    name: str
    default: str
    meaning: str
    secret: bool = False


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
    options: tuple[Variable, ...] = ()  # its own non-secret settings, read by Settings.option()
    # The package whose `app:create_app()` serves the service's public port, when it is not
    # `package` itself: the consent service's port serves the citizen portal (portal/app.py),
    # which composes the consent API's blueprints with its own pages.
    web_package: str | None = None

    @property
    def version_table(self) -> str:
        """Each service keeps its own Alembic version table so they can all share one database."""
        return f"alembic_version_{self.name}"

    @property
    def app_factory(self) -> str:
        """The WSGI target gunicorn loads."""
        return f"{self.web_package or self.package}.app:create_app()"


# Shared by the IdP and every resource server of the PHR sector: access tokens are encrypted
# (JWE) under it, so an app cannot read the PHR-sector subject inside its own token.
ACCESS_TOKEN_KEY = SecretSpec(
    "PHR_ACCESS_TOKEN_KEY",
    "encrypts access tokens (JWE) so apps cannot read the PHR-sector subject, for resource "
    "servers that publish no key of their own (see the TOKEN_DECRYPTION_KEYs): then the same "
    "value at the IdP and at those servers; the IdP also derives its sealing keys from it",
)


def token_decryption_key(prefix: str, whose: str) -> SecretSpec:
    """A resource server's own key for opening the access tokens sealed to it (JWE
    ECDH-ES+A256KW; phr_core.sealing), so no secret is shared with the IdPs."""
    return SecretSpec(
        f"PHR_{prefix}_TOKEN_DECRYPTION_KEY",
        f"opens the access tokens IdPs seal to {whose} public key, published in its federation "
        "metadata (a private EC P-256 JWK as JSON, or long random strings a key is derived from, "
        "separated by spaces, newest first: `rotate-token-key`, docs/operations.md)",
    )


def federation_key(prefix: str, whose: str) -> SecretSpec:
    """Each service signs its OpenID Federation entity configuration with its own key
    (PHR_<PREFIX>_FEDERATION_KEY; the authority's own is PHR_FEDERATION_KEY)."""
    return SecretSpec(
        "PHR_FEDERATION_KEY" if prefix == "FEDERATION" else f"PHR_{prefix}_FEDERATION_KEY",
        f"signs {whose} OpenID Federation entity configuration (a private JWK as JSON, or "
        "long random strings a P-256 key is derived from, separated by spaces, newest first: "
        "`phr federation rotate-key`, docs/operations.md)",
    )


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="idp",
        package="idp",
        title="OpenID Connect provider (IdP)",
        env_prefix="IDP",
        default_port=8001,
        url_env="PHR_ISSUER",
        secrets=(
            SecretSpec("PHR_IDP_SECRET_KEY", "signs the IdP's browser sessions"),
            SecretSpec(
                "PHR_IDP_DATA_KEY",
                "encrypts the IdP's signing keys and card-verified attributes at rest (several "
                "separated by spaces, newest first, during `phr idp rotate-data-key`)",
            ),
            ACCESS_TOKEN_KEY,
            SecretSpec(
                "PHR_PAIRWISE_KEY",
                "HMAC key of pairwise subjects; `ID:SECRET` entries separated by spaces, "
                "newest first (a bare secret is key id 1); never change a key in use, add one",
            ),
            federation_key("IDP", "the IdP's"),
        ),
        session_key="PHR_IDP_SECRET_KEY",
        options=(
            Variable(
                "PHR_IDP_CLIENTS_FILE",
                "",
                "JSON file of statically registered OAuth clients, loaded at start",
            ),
            Variable(
                "PHR_IDP_GRANT_STORE",
                "consent",
                "`consent`: consent-screen decisions are recorded with the consent service "
                "(PHR_CONSENT_URL), whose grant ids PHR servers check; `local`: kept only at "
                "the IdP (an IdP used without PHR servers)",
            ),
            Variable(
                "PHR_IDP_TRUSTED_PROXIES",
                "",
                "addresses or networks of reverse proxies in front of the IdP (comma-separated); "
                "only their X-Forwarded-For is believed when attempt limits count per source",
            ),
            Variable(
                "PHR_CARD_OCSP_CACHE_SECONDS",
                "10",
                'how long a card\'s OCSP answer "good" is reused (0 to 60 s): a card revoked '
                "at the authority stops signing in at most this long after",
            ),
            Variable(
                "PHR_CARD_VERIFIER",
                "virtual",
                "which verifier checks My Number card sign-ins: `virtual` (the virtual card and "
                "its stand-in authority; development only, refused in production) or `jpki` "
                "(real cards on any PC/SC reader, checked against J-LIS's roots and OCSP: "
                "PHR_CARD_JPKI_TRUST_ROOTS, PHR_CARD_JPKI_OCSP_URL) or `app` (the Digital "
                "Agency's authentication app as upstream OpenID provider: PHR_CARD_APP_ISSUER, "
                "PHR_CARD_APP_CLIENT_ID, PHR_CARD_APP_KEY_FILE); see docs/cards.md",
            ),
            Variable(
                "PHR_CARD_APP_ISSUER",
                "",
                "with PHR_CARD_VERIFIER=app: the authentication app service's issuer (its "
                "/.well-known/openid-configuration is read); https in production. A loopback "
                "URL here makes `phr dev run` start the development stand-in (idp.authapp_sim)",
            ),
            Variable(
                "PHR_CARD_APP_CLIENT_ID",
                "",
                "with PHR_CARD_VERIFIER=app: the client id the Digital Agency issued this IdP",
            ),
            Variable(
                "PHR_CARD_APP_KEY_FILE",
                "$PHR_VAR_DIR/authapp/client_key.json",
                "with PHR_CARD_VERIFIER=app: the private JWK (RSA) this IdP signs its "
                "private_key_jwt client assertions with (its public half is registered with "
                "the Digital Agency); created on first use in development only",
            ),
            Variable(
                "PHR_CARD_APP_ACR_VALUES",
                "aal3 crl",
                "with PHR_CARD_VERIFIER=app: the acr_values asked for; the ID token's acr must "
                "be the first of them (see idp/card/authapp/client.py)",
            ),
            Variable(
                "PHR_CARD_JPKI_TRUST_ROOTS",
                "",
                "with PHR_CARD_VERIFIER=jpki: PEM file of the J-LIS root and issuing CA "
                "certificates (利用者証明用 and 署名用) the IdP trusts; nothing is fetched by URL",
            ),
            Variable(
                "PHR_CARD_JPKI_OCSP_URL",
                "",
                "with PHR_CARD_VERIFIER=jpki: the OCSP responder J-LIS assigns this verifier "
                "(https); empty: each certificate's own responder",
            ),
            Variable(
                "PHR_CARD_TRUST_ROOT",
                "$PHR_VAR_DIR/card_authority/root.pem",
                "PEM file of the card authority's root certificate(s) the IdP trusts "
                "(the default is the development stand-in's root)",
            ),
            Variable(
                "PHR_IDP_THREADS",
                "4",
                "threads per IdP worker (gunicorn's gthread worker): a refresh waits on the "
                "consent API, and a waiting thread must not hold the whole worker; 1 runs the "
                "sync worker",
            ),
            Variable(
                "PHR_CARD_AUTHORITY_URL",
                "http://127.0.0.1:8005",
                "development card-authority stand-in (OCSP, CRL, renewal links); "
                "never started in production",
            ),
        ),
    ),
    ServiceSpec(
        name="fhir",
        package="phr_server",
        title="FHIR R4 PHR server (secure DB)",
        env_prefix="FHIR",
        default_port=8002,
        url_env="PHR_FHIR_URL",
        secrets=(
            SecretSpec(
                "PHR_FHIR_DATA_KEY",
                "master key wrapping the per-municipality data keys of stored FHIR resources",
            ),
            ACCESS_TOKEN_KEY,
            SecretSpec(
                "PHR_FHIR_CLIENT_SECRET",
                "the PHR server's client secret at the IdP, for its calls to the consent API",
            ),
            federation_key("FHIR", "the PHR server's"),
            token_decryption_key("FHIR", "the PHR server's"),
        ),
        options=(
            Variable(
                "PHR_FHIR_CLIENT_ID",
                "phr-server",
                "the PHR server's client id at the IdP (client credentials, scopes "
                "consent/grants.read consent/patients.read consent/arrivals.write)",
            ),
            Variable(
                "PHR_FHIR_MUNICIPALITIES",
                "072028",
                "全国地方公共団体コード of the municipalities whose records this PHR server holds "
                "(space-separated; the default is the development demo city): published as "
                "`phr_municipalities` in its federation metadata, the only ones it accepts "
                "writes and erasures for",
            ),
            Variable(
                "PHR_FHIR_THREADS",
                "4",
                "threads per PHR server worker (gunicorn's gthread worker, which keeps HTTP "
                "connections alive: about half the CPU per read of the sync worker); 1 runs "
                "the sync worker",
            ),
        ),
    ),
    ServiceSpec(
        name="consent",
        package="consent",
        web_package="portal",
        title="Consent service and citizen portal",
        env_prefix="CONSENT",
        default_port=8003,
        url_env="PHR_CONSENT_URL",
        secrets=(
            SecretSpec(
                "PHR_CONSENT_SECRET_KEY",
                "signs the portal's browser sessions and seals its stored tokens (several "
                "separated by spaces, newest first, during `phr consent rotate-secret-key`)",
            ),
            ACCESS_TOKEN_KEY,
            SecretSpec(
                "PHR_CONSENT_CLIENT_SECRET",
                "the portal's client secret at the IdP (it signs citizens in there)",
            ),
            SecretSpec(
                "PHR_CONSENT_SERVICE_SECRET",
                "the consent service's own client secret at the IdP, for asking the PHR server "
                "to erase a person's records",
            ),
            federation_key("CONSENT", "the portal's"),
            token_decryption_key("CONSENT", "the consent API's"),
            SecretSpec(
                "PHR_CONSENT_RECEIPT_KEY",
                "signs consent receipts (JWS ES256), published at $PHR_CONSENT_URL/receipts/"
                "jwks.json: random strings separated by spaces, newest first (the first signs, "
                "all stay published; `phr consent rotate-receipt-key`), or a private EC P-256 "
                "JWK / a JWK Set as JSON (docs/receipts.md)",
            ),
        ),
        options=(
            Variable(
                "PHR_CONSENT_CLIENT_ID",
                "phr-portal",
                "the portal's client id at the IdP (PHR sector; redirect "
                "$PHR_CONSENT_URL/auth/callback)",
            ),
            Variable(
                "PHR_CONSENT_OTHER_IDPS",
                "",
                "space-separated issuers of city-run OpenID providers the portal also offers "
                "for sign-in (after the platform's IdP), each registered there as a static "
                "PHR-sector client with private_key_jwt (`phr consent client-jwk`); offered "
                "only while the federation vouches for it",
            ),
            Variable(
                "PHR_CONSENT_SERVICE_CLIENT_ID",
                "phr-consent",
                "the consent service's client id at the IdP (client credentials, scope "
                "phr/erase: the only client the PHR server lets erase records)",
            ),
            Variable(
                "PHR_CONSENT_THREADS",
                "8",
                "threads per portal worker (gthread): a portal page mostly waits on the PHR "
                "server and the IdP; 1 runs the sync worker",
            ),
            Variable(
                "PHR_CONSENT_API_PORT",
                "8007",
                "local port of the consent decision API: the consent service's `/api/` served "
                "by a worker pool of its own (started with the portal by `phr consent serve` "
                "and `phr dev run`), so portal pages can never occupy the capacity that PHR "
                "servers and the IdP need for their consent decisions",
            ),
            Variable(
                "PHR_CONSENT_API_URL",
                "http://127.0.0.1:$PHR_CONSENT_API_PORT",
                "where PHR servers and the IdP call the consent decision "
                "API (tokens are still addressed to PHR_CONSENT_URL/api); point it at the "
                "decision pool, or write `$PHR_CONSENT_URL` (literally) to use the portal's "
                "pool for both",
            ),
            Variable(
                "PHR_CONSENT_API_THREADS",
                "8",
                "threads per worker of the consent decision API (gthread); 1 runs the sync worker",
            ),
            Variable(
                "PHR_CONSENT_PDF_FONT",
                "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
                "TrueType font with Japanese glyphs that the portal embeds (as a subset) in a "
                "child's printable record (PDF); Debian's fonts-ipaexfont-gothic installs the "
                "default. Missing: the PDF link answers a page saying so, the rest works",
            ),
        ),
        session_key="PHR_CONSENT_SECRET_KEY",
    ),
    ServiceSpec(
        name="connector",
        package="connectors",
        title="Municipal connector",
        env_prefix="CONNECTOR",
        default_port=8004,
        url_env="PHR_CONNECTOR_URL",
        secrets=(
            SecretSpec(
                "PHR_CONNECTOR_PSEUDONYM_KEY",
                "the municipality's key for pseudonymous codes (HMAC of the resident number); "
                "stays inside the city; several separated by spaces, newest first, after "
                "`phr connector rotate-pseudonym-key` (never remove one)",
            ),
            SecretSpec(
                "PHR_CONNECTOR_SIGNING_KEY",
                "the connector's private key for private_key_jwt at the IdP (RFC 7523): a PEM "
                "EC P-256 key, or a secret a P-256 key is derived from; register its public JWK "
                "(`phr connector jwk`) with the connector's client at the IdP",
            ),
            federation_key("CONNECTOR", "the connector's"),
        ),
        options=(
            Variable(
                "PHR_CONNECTOR_MUNICIPALITY",
                "072028",
                "全国地方公共団体コード (6 digits) of the municipality this connector serves",
            ),
            Variable("PHR_CONNECTOR_CLIENT_ID", "connector-072028", "its OAuth client id"),
            Variable(
                "PHR_CONNECTOR_INBOX",
                "$PHR_VAR_DIR/inbox",
                "folder the core systems' export files are dropped into",
            ),
            Variable(
                "PHR_CONNECTOR_METRICS_FILE",
                "$PHR_VAR_DIR/metrics-textfile/connector.prom",
                "file each `phr connector run` leaves its figures in (Prometheus text format, "
                "for node_exporter's textfile collector: docs/metrics.md); `off`: none",
            ),
        ),
    ),
    ServiceSpec(
        name="federation",
        package="federation",
        title="Federation authority (trust anchor, or a prefecture's intermediate)",
        env_prefix="FEDERATION",
        default_port=8006,
        url_env="PHR_FEDERATION_URL",
        secrets=(
            federation_key("FEDERATION", "the federation authority's (and its trust marks')"),
        ),
        options=(
            Variable(
                "PHR_FEDERATION_AUTHORITY_HINTS",
                "",
                "empty: this authority is the trust anchor; else the space-separated entity ids "
                "of its superiors (it is an intermediate, e.g. a prefecture). Every other service "
                "names PHR_FEDERATION_URL as its superior",
            ),
            Variable(
                "PHR_FEDERATION_TRUST_ANCHOR_FILE",
                "$PHR_VAR_DIR/federation/trust_anchors.json",
                "JSON object {entity id: JWK Set} of the trust anchors whose chains the services "
                "accept (`phr federation export-anchor` writes it); in development, when "
                "missing, the local anchor's own key is trusted",
            ),
        ),
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
