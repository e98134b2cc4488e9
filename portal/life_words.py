"""Words of the portal's data-sources, withdrawal, deletion and notices pages (Japanese first,
English second), kept apart from consent.i18n so each page family owns its text. The texts
are in the gettext catalogs under msgctxt `portal.life` (docs/translating.md)."""

from __future__ import annotations

from phr_core.catalogs import tables

WORDS: dict[str, dict[str, str]] = tables("portal.life")  # phr_core/translations


def words(lang: str) -> dict[str, str]:
    return WORDS[lang]
