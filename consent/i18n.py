"""The portal speaks Japanese first and English second; the choice sticks in a cookie."""

from __future__ import annotations

from flask import request

LANGUAGES = ("ja", "en")
COOKIE = "lang"

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "title": "わたしの健康記録ポータル",
        "tagline": "母子健康手帳・予防接種・健診の記録を、あなたの同意のもとで。",
        "municipalities": "参加している自治体",
        "none": "まだ参加している自治体はありません。",
        "switch": "English",
        "error_title": "エラー",
        "not_found": "ページが見つかりません。",
        "server_error": "問題が発生しました。しばらくしてからもう一度お試しください。",
        "bad_request": "リクエストが正しくありません。",
        "back": "トップへ戻る",
    },
    "en": {
        "title": "My Health Record Portal",
        "tagline": "Your maternal and child health, vaccination and checkup records, "
        "shared only as you consent.",
        "municipalities": "Participating municipalities",
        "none": "No municipality participates yet.",
        "switch": "日本語",
        "error_title": "Error",
        "not_found": "This page does not exist.",
        "server_error": "Something went wrong. Please try again in a moment.",
        "bad_request": "The request was not valid.",
        "back": "Back to the start page",
    },
}


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
