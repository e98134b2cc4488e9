"""The records a person may open an app on, as the consent service lists them for the consent
screen (idp.grants asks, idp.endpoints.interaction shows them)."""

from __future__ import annotations

from dataclasses import dataclass

from phr_core.grant_description import PatientFacts


@dataclass(frozen=True)
class PatientChoice:
    """One record the person may open an app on: the PHR server's Patient id and how to show it
    (city and relationship, never a name)."""

    id: str
    relationship: str  # self | child
    city: str
    city_en: str
    birth_month: str | None = None

    @property
    def facts(self) -> PatientFacts:
        """As the grant's description shows it, on the consent screen and in the portal."""
        return PatientFacts(self.relationship, self.city, self.city_en, self.birth_month)

    def label(self, lang: str) -> str:
        return self.facts.label(lang)
