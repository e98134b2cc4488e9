"""The portal speaks Japanese first and English second; the choice sticks in a cookie.

The words are in the gettext catalogs (phr_core/catalogs.py, docs/translating.md).
"""

from __future__ import annotations

from flask import request

from phr_core.catalogs import LANGUAGES, tables

COOKIE = "lang"

MESSAGES: dict[str, dict[str, str]] = tables("portal")  # phr_core/translations, msgctxt portal


def current_language() -> str:
    """`?lang=` wins, then the cookie, then the browser's Accept-Language, then Japanese."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    return request.accept_languages.best_match(LANGUAGES, default="ja") or "ja"


def messages(lang: str) -> dict[str, str]:
    return MESSAGES[lang]
