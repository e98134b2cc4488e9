"""The words of the portal's "+ services" pages (records, growth chart, vaccination schedule,
access history, export), Japanese first; merged over consent.i18n's messages for those pages.
The texts are in the gettext catalogs under msgctxt `portal.care` (docs/translating.md)."""

from __future__ import annotations

from phr_core.catalogs import table, tables

WORDS: dict[str, dict[str, str]] = tables("portal.care")  # phr_core/translations

# What the schedule leaves out, in Japanese, in the order of portal.care.schedule.NOT_COVERED.
NOT_COVERED_JA = tuple(table("ja", "portal.care.not_covered").values())
