"""Signing in on the phone you hold: the card panel's app link, and its development stand-in.

On a phone the sign-in page offers "read the card with this phone": a link to
`{issuer}/card/phone/<session id>?return=<the page's done path>`. It carries the same key as
the QR code (the session id), so a card-reading app that claims the link (an Android App Link /
iOS Universal Link on the IdP's own origin) reads the session, has the card sign its challenge,
POSTs the response like `phr card sign` does, and opens `return` in the browser, which takes
the result. The link format is ours (docs/cards.md says what is confirmed about the real apps:
no public browser-to-app link of J-LIS's JPKI app or the Digital Agency's app takes our
session; the authentication app is reached through its own authorize endpoint instead).

When no app claims the link, the browser opens it here. With the virtual card in development
this page is the stand-in for the app: a virtual card file and its PINs instead of the phone
reading the card. With any other verifier no such app exists yet, so the link is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from idp.card.profile import AUTH, SIGN, signed_data
from idp.card.response import CardResponse
from idp.card.vcard import VirtualCard
from phr_core.return_paths import local_path


def safe_return(path: object) -> str | None:
    """`path` if it is a path on this site ("/..."), never another origin: the link's `return`
    is only ever the sign-in page's own done path, and must not become an open redirect (the
    portal's rule, phr_core.return_paths)."""
    return local_path(path, 512)


@dataclass(frozen=True)
class StandInCard:
    """What the stand-in page was given: a virtual card file on this (development) machine."""

    card_path: str
    auth_pin: str
    sign_pin: str = ""

    def load(self) -> VirtualCard | None:
        """The card, or None when the file is missing or not a virtual card."""
        try:
            return VirtualCard.load(Path(self.card_path))
        except (OSError, ValueError, KeyError):
            return None

    def response(
        self, card: VirtualCard, origin: str, session_id: str, challenge: str, with_signature: bool
    ) -> CardResponse:
        """What a card-reading app would POST: the 利用者証明用 certificate and its signature
        over the session's signed bytes, plus the 署名用 pair when enrolling. A wrong PIN raises
        CardError('wrong_pin') and spends a try, as on the card."""
        data = signed_data(origin, session_id, challenge)
        certificate = card.certificate_der(AUTH)
        signature = card.sign(AUTH, self.auth_pin, data)
        if not with_signature:
            return CardResponse(certificate, signature)
        return CardResponse(
            certificate,
            signature,
            card.certificate_der(SIGN),
            card.sign(SIGN, self.sign_pin, data),
        )
