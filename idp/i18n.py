"""The IdP's pages speak Japanese first, English second; `ui_locales` picks for one request."""

from __future__ import annotations

from flask import request

LANGUAGES = ("ja", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "brand": "PHR 認証サービス",
        "login_title": "サインイン",
        "login_for": "{app} を利用するためにサインインします。",
        "card_required": "このアプリを使うには、マイナンバーカードでのサインインが必要です。",
        "dev_title": "開発用サインイン（本番では表示されません）",
        "dev_person": "デモ市民の番号",
        "sign_in": "サインイン",
        "consent_title": "アクセスの許可",
        "consent_intro": "{app} が、あなたの次の情報へのアクセスを求めています。",
        "purpose": "利用目的",
        "no_purpose": "（利用目的の記載がありません）",
        "allow": "許可する",
        "deny": "許可しない",
        "revoke_note": "許可はポータルの「データを見られる相手」からいつでも取り消せます。",
        "error_title": "エラー",
        "back": "アプリに戻ってやり直してください。",
        "switch": "English",
        "logout_title": "サインアウト",
        "logout_question": "この端末の PHR 認証サービスからサインアウトしますか？",
        "logout_yes": "サインアウトする",
        "logout_no": "サインインしたままにする",
        "logged_out": "サインアウトしました。",
        "consent_unavailable": "同意を記録できませんでした。"
        "しばらくしてからもう一度お試しください。",
        "patient_title": "どの記録を見せますか",
        "patient_none": "まだ自治体の記録とつながっていないため、"
        "このアプリに見せる記録はありません。"
        "ポータルで自治体からのデータ提供に同意すると、記録が届きます。",
        "patient_pick": "記録を 1 つ選んでください。",
    },
    "en": {
        "brand": "PHR sign-in service",
        "login_title": "Sign in",
        "login_for": "Sign in to use {app}.",
        "card_required": "This app needs you to sign in with your My Number card.",
        "dev_title": "Development sign-in (never shown in production)",
        "dev_person": "Demo citizen number",
        "sign_in": "Sign in",
        "consent_title": "Allow access",
        "consent_intro": "{app} asks for access to the following information of yours.",
        "purpose": "Purpose",
        "no_purpose": "(The app declared no purpose.)",
        "allow": "Allow",
        "deny": "Don't allow",
        "revoke_note": "You can revoke access at any time in the portal "
        "under “Who can see my data”.",
        "error_title": "Error",
        "back": "Go back to the app and try again.",
        "switch": "日本語",
        "logout_title": "Sign out",
        "logout_question": "Sign out of the PHR sign-in service on this device?",
        "logout_yes": "Sign out",
        "logout_no": "Stay signed in",
        "logged_out": "You are signed out.",
        "consent_unavailable": "Your decision could not be recorded. Please try again shortly.",
        "patient_title": "Whose record may the app see?",
        "patient_none": "No city records are linked to you yet, so there is nothing this app can "
        "see. Consent to your city providing your data in the portal and records will arrive.",
        "patient_pick": "Please choose one record.",
    },
}


def pick_language(ui_locales: str | None = None) -> str:
    for tag in (ui_locales or "").split():
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="ja") or "ja"
