"""PHR_CARD_VERIFIER: which verifier checks My Number card sign-ins, and what it trusts.

- `virtual` (development default): the virtual card and its stand-in authority
  (idp.authority_sim): trust root PHR_CARD_TRUST_ROOT, OCSP/CRL/renewal links at
  PHR_CARD_AUTHORITY_URL. Refused in production.
- `jpki`: real cards through any PC/SC reader (`phr card sign --reader`), checked by this IdP as
  a 利用者証明検証者 against J-LIS: the J-LIS roots and issuing CAs in PHR_CARD_JPKI_TRUST_ROOTS
  (nothing fetched by URL), revocation by OCSP at the certificate's responder or at
  PHR_CARD_JPKI_OCSP_URL (the address J-LIS assigns a verifier), CRL as fallback, fail closed.
- `app`: the Digital Agency's authentication app as upstream OpenID provider; this IdP is its
  relying party (idp/card/authapp/): PHR_CARD_APP_ISSUER, PHR_CARD_APP_CLIENT_ID,
  PHR_CARD_APP_KEY_FILE, PHR_CARD_APP_ACR_VALUES (`app_choice`). In development a loopback
  issuer is the stand-in (idp.authapp_sim), which production refuses.

See docs/cards.md for which route a city takes and how to test it before going live.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from idp.card.renewal import RenewalLinks
from idp.card.verify import TrustStore
from phr_core.config import ConfigError, Settings

VERIFIERS = ("virtual", "jpki", "app")


@dataclass(frozen=True)
class VerifierChoice:
    kind: str  # one of VERIFIERS
    trust_root: Path  # PEM: roots (self-signed) and issuing CAs
    authority_url: str | None  # where issuing CAs and renewal links may be fetched (stand-in)
    ocsp_url: str | None  # a fixed OCSP responder instead of the certificate's own


class NoRenewalLinks(RenewalLinks):
    """No renewal-link service (JPKI as configured here): a renewed card enrolls again, with
    both certificates, as a new card."""

    def __init__(self, trust: TrustStore) -> None:
        super().__init__("", trust)

    def old_fingerprints(self, new_fingerprint: str) -> list[str]:
        return []


def verifier_choice(settings: Settings) -> VerifierChoice:
    """The configured verifier; ConfigError naming the variable when it cannot be used."""
    kind = settings.option("PHR_CARD_VERIFIER").strip().lower()
    if kind not in VERIFIERS:
        raise ConfigError(
            f"PHR_CARD_VERIFIER={kind!r} must be one of {', '.join(VERIFIERS)} (docs/cards.md)"
        )
    if kind == "app":
        app_choice(settings)  # its own settings, checked here so the IdP refuses them at start
        # The QR-code card panel stays on the development stand-in authority's trust root;
        # sign-in itself goes through the authentication app.
        return VerifierChoice(kind, Path(settings.option("PHR_CARD_TRUST_ROOT")), None, None)
    if kind == "virtual":
        if settings.production:
            raise ConfigError(
                "PHR_CARD_VERIFIER=virtual (the virtual card and its stand-in authority) is for "
                "development only; set PHR_CARD_VERIFIER=jpki with the J-LIS trust roots "
                "(docs/cards.md)"
            )
        return VerifierChoice(
            kind,
            Path(settings.option("PHR_CARD_TRUST_ROOT")),
            settings.option("PHR_CARD_AUTHORITY_URL"),
            None,
        )
    roots = settings.option("PHR_CARD_JPKI_TRUST_ROOTS").strip()
    if not roots or not Path(roots).is_file():
        raise ConfigError(
            "PHR_CARD_VERIFIER=jpki needs PHR_CARD_JPKI_TRUST_ROOTS: a PEM file with the J-LIS "
            f"root and issuing CA certificates (got {roots or 'nothing'!r}; docs/cards.md)"
        )
    ocsp_url = settings.option("PHR_CARD_JPKI_OCSP_URL").strip() or None
    if ocsp_url and settings.production and not ocsp_url.startswith("https://"):
        # The answer is signed, but a plain-http responder address is a configuration slip.
        raise ConfigError("PHR_CARD_JPKI_OCSP_URL must be an https:// URL in production")
    return VerifierChoice(kind, Path(roots), None, ocsp_url)


@dataclass(frozen=True)
class AppChoice:
    """PHR_CARD_VERIFIER=app: the upstream authentication-app service and this IdP's client."""

    issuer: str
    client_id: str
    key_file: Path
    acr_values: tuple[str, ...]


def app_choice(settings: Settings) -> AppChoice:
    """The authentication-app settings; ConfigError naming the variable when unusable."""
    issuer = settings.option("PHR_CARD_APP_ISSUER").strip().rstrip("/")
    client_id = settings.option("PHR_CARD_APP_CLIENT_ID").strip()
    key_file = Path(settings.option("PHR_CARD_APP_KEY_FILE"))
    acr_values = tuple(settings.option("PHR_CARD_APP_ACR_VALUES").split())
    if not issuer.startswith(("https://", "http://")):
        raise ConfigError(
            "PHR_CARD_VERIFIER=app needs PHR_CARD_APP_ISSUER, the authentication app service's "
            f"issuer URL (got {issuer or 'nothing'!r}; docs/cards.md)"
        )
    if not client_id:
        raise ConfigError(
            "PHR_CARD_VERIFIER=app needs PHR_CARD_APP_CLIENT_ID, the client id the Digital "
            "Agency issued (docs/cards.md)"
        )
    if not acr_values:
        raise ConfigError("PHR_CARD_APP_ACR_VALUES must name at least one acr value")
    if settings.production:
        if not issuer.startswith("https://"):
            raise ConfigError("PHR_CARD_APP_ISSUER must be an https:// URL in production")
        if _loopback(issuer):
            raise ConfigError(
                "PHR_CARD_APP_ISSUER points at this machine: the authentication-app stand-in "
                "(idp.authapp_sim) is for development only (docs/cards.md)"
            )
        if not key_file.is_file():
            raise ConfigError(
                f"PHR_CARD_APP_KEY_FILE={str(key_file)!r}: the IdP's client key (private JWK) "
                "is missing; in production it is never created (docs/cards.md)"
            )
    return AppChoice(issuer, client_id, key_file, acr_values)


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
