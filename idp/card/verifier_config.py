"""PHR_CARD_VERIFIER: which verifier checks My Number card sign-ins, and what it trusts.

- `virtual` (development default): the virtual card and its stand-in authority
  (idp.authority_sim): trust root PHR_CARD_TRUST_ROOT, OCSP/CRL/renewal links at
  PHR_CARD_AUTHORITY_URL. Refused in production.
- `jpki`: real cards through any PC/SC reader (`phr card sign --reader`), checked by this IdP as
  a 利用者証明検証者 against J-LIS: the J-LIS roots and issuing CAs in PHR_CARD_JPKI_TRUST_ROOTS
  (nothing fetched by URL), revocation by OCSP at the certificate's responder or at
  PHR_CARD_JPKI_OCSP_URL (the address J-LIS assigns a verifier), CRL as fallback, fail closed.
- `app` (issue 15, part 2, not built yet): the Digital Agency's authentication app as upstream
  OpenID provider. Add it to VERIFIERS with its own settings; callers switch on `.kind`.

See docs/cards.md for which route a city takes and how to test it before going live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from idp.card.renewal import RenewalLinks
from idp.card.verify import TrustStore
from phr_core.config import ConfigError, Settings

VERIFIERS = ("virtual", "jpki")


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
