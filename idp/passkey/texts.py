"""Words of the staff counter and passkey pages, Japanese first, English second (gettext
catalogs, msgctxt `idp.passkey`: docs/translating.md)."""

from __future__ import annotations

from idp.i18n import MESSAGES
from phr_core.catalogs import LANGUAGES, tables

TEXTS: dict[str, dict[str, str]] = tables("idp.passkey")  # phr_core/translations


def texts(lang: str) -> dict[str, str]:
    """The IdP's shared words (brand, switch, …) with the phone path's own."""
    lang = lang if lang in TEXTS else LANGUAGES[0]
    return {**MESSAGES[lang], **TEXTS[lang]}
