"""Which municipalities' records this PHR server holds (PHR_FHIR_MUNICIPALITIES).

One deployment may serve several municipalities (each its own tenant: rows tagged with the
municipality, sealed under that municipality's data key, reachable by that municipality's
connector alone), or each municipality runs its own server. Either way a server takes writes
and erasures only for the municipalities it is configured for, the same list it publishes to
the federation, so a connector pointed at the wrong city's server is refused instead of
leaving records where nobody will look for them.
"""

from __future__ import annotations

from phr_core.config import Settings


def served(settings: Settings) -> list[str]:
    """The 全国地方公共団体コード this server holds records of, in configured order."""
    return list(dict.fromkeys(settings.option("PHR_FHIR_MUNICIPALITIES").split()))


def refusal(settings: Settings, municipalities: list[str]) -> str | None:
    """Why a request for `municipalities` is not this server's to handle, or None."""
    here = served(settings)
    foreign = [m for m in dict.fromkeys(municipalities) if m not in here]
    if not foreign:
        return None
    return (
        f"this PHR server does not hold records of municipality {', '.join(foreign)} "
        f"(it serves {', '.join(here) or 'none'}); find that municipality's server through "
        "the federation"
    )
