"""The words of the printable record and the CSV of a child's records (portal.print_pdf,
portal.export_csv, portal.export_child), in the gettext catalogs under msgctxt `portal.print`
(docs/translating.md)."""

from __future__ import annotations

from phr_core.catalogs import tables

WORDS: dict[str, dict[str, str]] = tables("portal.print")  # phr_core/translations
