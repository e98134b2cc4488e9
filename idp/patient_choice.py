"""The records a person may open an app on, as the consent service lists them for the consent
screen (idp.grants asks, idp.endpoints.interaction shows them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatientChoice:
    """One record the person may open an app on: the PHR server's Patient id and how to show it
    (city and relationship, never a name)."""

    id: str
    relationship: str  # self | child
    city: str
    city_en: str
    birth_month: str | None = None

    def label(self, lang: str) -> str:
        if lang == "en":
            who = "You" if self.relationship == "self" else f"Child born {self.birth_month}"
            return f"{who} ({self.city_en})"
        if self.relationship == "self":
            return f"あなた（{self.city}）"
        year, month = (self.birth_month or "0-0").split("-")
        return f"お子さん・{year}年{int(month)}月生まれ（{self.city}）"
