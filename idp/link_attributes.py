"""The card-verified attributes the portal needs to ask a city to find a person (DESIGN.md,
"How a person is linked without being named").

Only the platform's own portal (a first-party client) gets them, only when its back-channel
code exchange asks with `phr_card_attributes=1`, and only for a card sign-in: they travel
server to server in the token response, never through the browser, and the portal puts them
straight into an encrypted link request. Nothing is returned for a person who never enrolled
with a card."""

from __future__ import annotations

from sqlalchemy.orm import Session

from idp.card.services import read_attributes
from idp.card.views import services
from idp.clients import ClientView
from idp.context import ACR_CARD

FORM_PARAM = "phr_card_attributes"
RESPONSE_MEMBER = "phr_card_attributes"


def for_portal(
    s: Session, client: ClientView, person_id: str, acr: str, asked: str | None
) -> dict[str, dict[str, str]]:
    """`{"phr_card_attributes": {...}}` to add to the token response, or {}."""
    if asked != "1" or not client.first_party or acr != ACR_CARD:
        return {}
    attrs = read_attributes(s, services(), person_id)
    return {RESPONSE_MEMBER: attrs.as_dict()} if attrs is not None else {}
