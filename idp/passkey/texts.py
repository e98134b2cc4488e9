"""Words of the staff counter and passkey pages, Japanese first, English second."""

from __future__ import annotations

from idp.i18n import MESSAGES

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "staff_title": "窓口職員のサインイン",
        "staff_login": "ログイン名",
        "staff_password": "パスワード",
        "staff_sign_in": "サインイン",
        "staff_sign_out": "サインアウト",
        "counter_title": "パスキー登録コードの発行",
        "counter_help": "本人確認書類（マイナンバーカード等）で本人であることを対面で確認し、"
        "カードに記載の氏名と生年月日を入力してください。"
        "本人が一度マイナンバーカードでサインイン（登録）している必要があります。",
        "signed_in_as": "職員: {login}",
        "name": "氏名",
        "birthdate": "生年月日（YYYY-MM-DD）",
        "address": "住所（同じ氏名・生年月日の登録が複数あるときのみ）",
        "confirmed": "本人確認書類の写真と本人を照合しました",
        "issue": "登録コードを発行",
        "code_title": "登録コード",
        "code_help": "ご本人のスマートフォンで {url} を開き（またはQRコードを読み取り）、"
        "このコードを入力してもらってください。コードはこの画面でしか表示されません。",
        "code_expires": "有効期限: {time}（15分・1回限り）",
        "another": "次の方へ",
        "enroll_title": "パスキーの登録",
        "enroll_help": "窓口で受け取った登録コードを入力し、この端末にパスキーを登録します。"
        "端末の画面ロック（生体認証または暗証番号）で確認します。",
        "code_label": "登録コード",
        "enroll_button": "パスキーを登録",
        "registered": "パスキーを登録しました。次回から「パスキーでサインイン」を使えます。",
        "passkey_title": "パスキーでサインイン",
        "passkey_help": "窓口で登録したこの端末のパスキーでサインインします。",
        "passkey_button": "パスキーでサインイン",
        "working": "端末で確認してください…",
        "cancelled": "操作が取り消されたか、時間切れになりました。もう一度お試しください。",
        "unsupported": "このブラウザはパスキーに対応していません。",
        "noscript": "パスキーを使うには JavaScript を有効にしてください。",
    },
    "en": {
        "staff_title": "Counter staff sign-in",
        "staff_login": "Login name",
        "staff_password": "Password",
        "staff_sign_in": "Sign in",
        "staff_sign_out": "Sign out",
        "counter_title": "Issue a passkey enrollment code",
        "counter_help": "Check the person face to face against an identity document (e.g. the "
        "My Number card), then enter the name and birth date shown on the card. The person "
        "must have signed in (enrolled) once with their My Number card.",
        "signed_in_as": "Staff: {login}",
        "name": "Name",
        "birthdate": "Birth date (YYYY-MM-DD)",
        "address": "Address (only when several enrolled people share name and birth date)",
        "confirmed": "I checked the person against the photo on their identity document",
        "issue": "Issue enrollment code",
        "code_title": "Enrollment code",
        "code_help": "Have the person open {url} on their phone (or scan the QR code) and "
        "enter this code. The code is shown on this screen only.",
        "code_expires": "Valid until {time} (15 minutes, single use)",
        "another": "Next person",
        "enroll_title": "Register a passkey",
        "enroll_help": "Enter the enrollment code you were given at the counter to register a "
        "passkey on this device. Your device's screen lock (biometrics or PIN) confirms it.",
        "code_label": "Enrollment code",
        "enroll_button": "Register passkey",
        "registered": "Your passkey is registered. Next time, use “Sign in with a passkey”.",
        "passkey_title": "Sign in with a passkey",
        "passkey_help": "Sign in with the passkey on this device that you registered at a counter.",
        "passkey_button": "Sign in with a passkey",
        "working": "Confirm on your device…",
        "cancelled": "The request was cancelled or timed out. Please try again.",
        "unsupported": "This browser does not support passkeys.",
        "noscript": "Turn on JavaScript to use passkeys.",
    },
}


def texts(lang: str) -> dict[str, str]:
    """The IdP's shared words (brand, switch, …) with the phone path's own."""
    lang = "en" if lang == "en" else "ja"
    return {**MESSAGES[lang], **TEXTS[lang]}
