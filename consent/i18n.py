"""The portal speaks Japanese first and English second; the choice sticks in a cookie."""

from __future__ import annotations

from flask import request

LANGUAGES = ("ja", "en")
COOKIE = "lang"

MESSAGES: dict[str, dict[str, str]] = {
    "ja": {
        "title": "わたしの健康記録ポータル",
        "nav_label": "メニュー",
        "sign_in": "サインイン",
        "sign_out": "サインアウト",
        "sign_in_note": "マイナンバーカードでサインインすると、あなたの記録と同意を確認できます。",
        "my_page": "マイページ",
        "signed_in_note": "サインインしています。",
        "forbidden": "このページを見るにはサインインが必要です。",
        "signin_expired": "サインインの有効期限が切れたか、すでに完了しています。"
        "もう一度サインインしてください。",
        "signin_failed": "サインインを完了できませんでした。もう一度サインインしてください。",
        "signin_cancelled": "サインインは取り消されました。",
        "signin_unavailable": "いまサインインの窓口につながりません。"
        "しばらくしてからもう一度お試しください。",
        "signin_choose": "サインイン先を選んでください",
        "signin_home": "PHR 基盤のサインイン（マイナンバーカード）",
        "signin_other_note": "自治体が運営するサインイン先でも使えます。"
        "サインイン先ごとに別の利用者として扱われ、同意や自治体とのつながりは共有されません。",
        "apps_title": "データを見られる相手",
        "apps_intro": "あなたが同意して、あなたの記録を読めるアプリです。"
        "取り消すと、そのアプリは次のアクセスから記録を読めなくなります。",
        "apps_none": "あなたの記録を読めるアプリはありません。",
        "apps_access": "できること",
        "apps_categories": "記録の種類",
        "apps_purpose": "目的",
        "apps_granted": "同意した日",
        "apps_expires": "期限",
        "apps_no_end": "期限なし",
        "apps_revoke": "取り消す",
        "apps_revoke_label": "{app} への同意を取り消す",
        "apps_revoked": "同意を取り消しました。",
        "list_sep": "、",
        "tagline": "母子健康手帳・予防接種・健診の記録を、あなたの同意のもとで。",
        "municipalities": "参加している自治体",
        "none": "まだ参加している自治体はありません。",
        "switch": "English",
        "error_title": "エラー",
        "not_found": "ページが見つかりません。",
        "server_error": "問題が発生しました。しばらくしてからもう一度お試しください。",
        "bad_request": "リクエストが正しくありません。",
        "too_large": "送信された内容が大きすぎます。内容を減らしてもう一度お試しください。",
        "url_too_long": "アドレス（URL）が長すぎます。トップからやり直してください。",
        "back": "トップへ戻る",
        "privacy": "プライバシーと同意について",
        "privacy_intro": "このポータルは、あなたが同意した範囲でだけ、自治体の健康記録を PHR 基盤に"
        "受け取り、あなたが選んだアプリに渡します。同意はいつでも取り消せます。",
        "privacy_kinds": "2 種類の同意",
        "privacy_provider": "自治体への同意：自治体が、あなた（とお子さん）の記録を PHR 基盤に提供"
        "します。最初の同意のとき、マイナンバーカードで確認した氏名・生年月日・性別・住所を自治体に"
        "送り、住民記録と照合します。照合が済むとこれらの情報は削除され、以後は自治体が作った"
        "仮名のコードだけで記録を扱います。",
        "privacy_recipient": "アプリへの同意：選んだアプリが、選んだ種類の記録を、"
        "示された目的のために、"
        "期限まで読めます。期限は最長 1 年で、取り消すと次のアクセスから読めなくなります。"
        "アプリがすでに受け取った記録はアプリの側に残ります。",
        "privacy_categories": "記録の種類",
        "privacy_rights": "あなたができること",
        "privacy_right_withdraw": "同意の取り消し（自治体からの提供も、アプリへの提供も）",
        "privacy_right_history": "同意の履歴と同意の控え（レシート）のダウンロード",
        "privacy_right_access": "どのアプリがいつ何を読んだかの確認",
        "privacy_right_delete": "あなたのデータの削除の申し出",
        "privacy_children": "お子さんの記録",
        "privacy_children_text": "母子健康手帳で親子とわかるお子さんについて、"
        "保護者（父母どちらも）が代わりに同意できます。"
        "保護者としての閲覧と同意は、お子さんが {age} 歳になる誕生日に終わります。",
    },
    "en": {
        "title": "My Health Record Portal",
        "nav_label": "Menu",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "sign_in_note": "Sign in with your My Number card to see your records and consents.",
        "my_page": "My page",
        "signed_in_note": "You are signed in.",
        "forbidden": "Please sign in to see this page.",
        "signin_expired": "This sign-in has expired or was already completed. "
        "Please sign in again.",
        "signin_failed": "The sign-in could not be completed. Please sign in again.",
        "signin_cancelled": "The sign-in was cancelled.",
        "signin_unavailable": "The sign-in service cannot be reached right now. "
        "Please try again in a moment.",
        "signin_choose": "Choose where to sign in",
        "signin_home": "The platform's sign-in (My Number card)",
        "signin_other_note": "A city-run sign-in service works too. Each sign-in service is a "
        "separate account: consents and links to cities are not shared between them.",
        "apps_title": "Who can see my data",
        "apps_intro": "These apps may read your records because you agreed. Once you revoke, "
        "an app's next request is refused.",
        "apps_none": "No app can read your records.",
        "apps_access": "What it may do",
        "apps_categories": "Kinds of records",
        "apps_purpose": "Purpose",
        "apps_granted": "Agreed on",
        "apps_expires": "Until",
        "apps_no_end": "No end date",
        "apps_revoke": "Revoke",
        "apps_revoke_label": "Revoke access for {app}",
        "apps_revoked": "Access revoked.",
        "list_sep": ", ",
        "tagline": "Your maternal and child health, vaccination and checkup records, "
        "shared only as you consent.",
        "municipalities": "Participating municipalities",
        "none": "No municipality participates yet.",
        "switch": "日本語",
        "error_title": "Error",
        "not_found": "This page does not exist.",
        "server_error": "Something went wrong. Please try again in a moment.",
        "bad_request": "The request was not valid.",
        "too_large": "What was sent is too large. Please send less and try again.",
        "url_too_long": "The address (URL) is too long. Please start again from the start page.",
        "back": "Back to the start page",
        "privacy": "Privacy and consent",
        "privacy_intro": "This portal receives your city's health records into the PHR "
        "platform, and passes them to apps you choose, only as far as you consent. You can "
        "withdraw at any time.",
        "privacy_kinds": "Two kinds of consent",
        "privacy_provider": "Consent to your city: the city provides your (and your children's) "
        "records to the PHR platform. The first time, the name, birth date, sex and address your "
        "My Number card proved are sent to the city to find you in its register. They are deleted "
        "once the city has answered; from then on records carry only the city's pseudonymous code.",
        "privacy_recipient": "Consent to an app: the app you choose may read the kinds of records "
        "you choose, for the stated purpose, until the end date (at most one year). Once you "
        "withdraw, its next request is refused. Records the app already received stay with "
        "the app.",
        "privacy_categories": "Kinds of records",
        "privacy_rights": "What you can do",
        "privacy_right_withdraw": "Withdraw a consent (to your city or to an app)",
        "privacy_right_history": "See the history of your consents and download consent receipts",
        "privacy_right_access": "See which app read what, and when",
        "privacy_right_delete": "Ask for your data to be deleted",
        "privacy_children": "Your children's records",
        "privacy_children_text": "For children the maternal and child health handbook names as "
        "yours, a guardian (either parent) may consent on their behalf. Access and consent as a "
        "guardian end on the child's {age}th birthday.",
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
