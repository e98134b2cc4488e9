"""The IdP's pages speak Japanese first, English second; `ui_locales` picks for one request.

The words are in the gettext catalogs (phr_core/catalogs.py, docs/translating.md).
"""

from __future__ import annotations

from flask import request

from phr_core.catalogs import LANGUAGES, tables

MESSAGES: dict[str, dict[str, str]] = tables("idp")  # phr_core/translations, msgctxt idp


def pick_language(ui_locales: str | None = None) -> str:
    for tag in (ui_locales or "").split():
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="ja") or "ja"
