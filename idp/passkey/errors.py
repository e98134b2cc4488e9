"""Every way the phone path can refuse: one code, one HTTP status, one message in Japanese and
English. Messages speak about the code or the passkey in the person's own hands; none says
whether any person is enrolled or any other passkey exists (sign-in asks for no name, so there
is nothing to probe with; a credential id is a random value only its authenticator knows)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    status: int
    ja: str
    en: str


_FAILURES: tuple[Failure, ...] = (
    # --- counter staff -------------------------------------------------------------------
    Failure(
        "bad_credentials",
        401,
        "ログイン名またはパスワードが違います。",
        "Wrong login name or password.",
    ),
    Failure(
        "staff_locked",
        423,
        "続けて間違えたため、このアカウントは一時的にロックされています。15分後にやり直すか、管理者に解除を依頼してください。",
        "This account is locked after too many wrong passwords. Try again in 15 minutes or "
        "ask an administrator to unlock it.",
    ),
    Failure(
        "staff_signed_out",
        401,
        "職員としてサインインしていないか、サインインの有効期限が切れました。",
        "You are not signed in as staff, or your sign-in has expired.",
    ),
    Failure(
        "csrf",
        400,
        "フォームの有効期限が切れました。ページを開き直してやり直してください。",
        "The form has expired. Reload the page and try again.",
    ),
    Failure(
        "bad_input",
        400,
        "氏名と生年月日（YYYY-MM-DD）を入力してください。",
        "Enter the name and the birth date (YYYY-MM-DD).",
    ),
    Failure(
        "not_confirmed",
        400,
        "本人確認書類と本人を照合したことを確認してください。",
        "Confirm that you checked the person against their identity document.",
    ),
    Failure(
        "person_not_found",
        404,
        "一致する登録がありません。先にマイナンバーカードで一度サインイン（登録）してもらう必要があります。",
        "No enrolled person matches. The person must first sign in (enroll) once with their "
        "My Number card.",
    ),
    Failure(
        "person_ambiguous",
        409,
        "同じ氏名・生年月日の登録が複数あります。カードに記載の住所も入力してください。",
        "Several enrolled people share this name and birth date. Also enter the address "
        "shown on the card.",
    ),
    # --- the person: enrollment code ---------------------------------------------------------
    Failure(
        "code_wrong",
        400,
        "登録コードが正しくありません。窓口で受け取ったコードを確かめて入力してください。",
        "The enrollment code is not right. Check the code you were given at the counter.",
    ),
    Failure(
        "code_expired",
        410,
        "登録コードの有効期限（15分）が切れました。窓口で新しいコードを受け取ってください。",
        "The enrollment code has expired (15 minutes). Ask at the counter for a new one.",
    ),
    Failure(
        "code_used",
        409,
        "この登録コードは使用済みです。もう一度登録するには、窓口で新しいコードを受け取ってください。",
        "This enrollment code has already been used. Ask at the counter for a new one.",
    ),
    Failure(
        "too_many_attempts",
        429,
        "誤りが続いたため、しばらく受け付けを停止しています。15分ほどしてからお試しください。",
        "Too many wrong attempts. Please wait about 15 minutes and try again.",
    ),
    # --- WebAuthn ceremonies ---------------------------------------------------------------
    Failure(
        "malformed_request",
        400,
        "送信された内容の形式が正しくありません。ページを開き直してやり直してください。",
        "What was sent is not well formed. Reload the page and try again.",
    ),
    Failure(
        "challenge_unknown",
        400,
        "この操作の受付が見つかりません。ページを開き直してやり直してください。",
        "This attempt was not started here. Reload the page and try again.",
    ),
    Failure(
        "challenge_expired",
        410,
        "時間切れ（5分）です。ページを開き直してやり直してください。",
        "The attempt timed out (5 minutes). Reload the page and try again.",
    ),
    Failure(
        "challenge_used",
        409,
        "この応答はすでに使われています（再送は受け付けません）。ページを開き直してやり直してください。",
        "This response has already been used; a replay is not accepted. Reload the page and "
        "try again.",
    ),
    Failure(
        "wrong_origin",
        400,
        "このパスキーの応答は別のサイト向けに作られています。このページから操作してください。",
        "The passkey answered for another site. Use this page.",
    ),
    Failure(
        "user_verification_required",
        400,
        "端末の画面ロック（生体認証または暗証番号）での確認が必要です。",
        "Your device must confirm it is you (biometrics or screen-lock PIN).",
    ),
    Failure(
        "registration_failed",
        400,
        "パスキーを登録できませんでした。対応する端末・ブラウザでやり直してください。",
        "The passkey could not be registered. Try again on a supported device and browser.",
    ),
    Failure(
        "credential_unknown",
        401,
        "このパスキーはこのサービスに登録されていません。窓口で登録するか、マイナンバーカードでサインインしてください。",
        "This passkey is not registered with this service. Register it at a counter or sign in "
        "with your My Number card.",
    ),
    Failure(
        "bad_signature",
        401,
        "パスキーの署名を確認できませんでした。もう一度お試しください。",
        "The passkey's signature could not be verified. Please try again.",
    ),
    Failure(
        "sign_count_regressed",
        403,
        "このパスキーの利用回数が前回より戻っています（複製の疑い）。安全のため使えません。窓口にご相談ください。",
        "This passkey's use counter went backwards (it may have been copied), so it is refused "
        "for safety. Please contact a counter.",
    ),
    Failure(
        "sign_in_paused",
        429,
        "サインインの失敗が続いたため、このパスキーでのサインインを一時的に止めています。15分ほどしてからお試しください。",
        "Sign-in with this passkey is paused after repeated failures. Please try again in "
        "about 15 minutes.",
    ),
    Failure(
        "card_required",
        403,
        "このアプリを使うには、マイナンバーカードでのサインインが必要です（パスキーでは利用できません）。",
        "This app needs you to sign in with your My Number card; a passkey is not enough.",
    ),
    Failure(
        "passkeys_unavailable",
        503,
        "このサーバーのアドレスではパスキーを使えません（IPアドレスではなくホスト名が必要です）。",
        "Passkeys cannot be used at this server's address (it needs a host name, not an IP "
        "address).",
    ),
    Failure(
        "request_expired",
        410,
        "サインインの受付が期限切れになりました。アプリに戻ってやり直してください。",
        "The sign-in request has expired. Go back to the app and try again.",
    ),
)

FAILURES: dict[str, Failure] = {f.code: f for f in _FAILURES}


class PasskeyError(Exception):
    """A refusal with its code; `message(lang)` is safe to show to whoever sent the request."""

    def __init__(self, code: str, ref: str | None = None, person_id: str | None = None) -> None:
        if code not in FAILURES:
            raise ValueError(f"unknown passkey failure code {code!r}")
        super().__init__(code)
        self.code = code
        self.ref = ref  # what the refusal concerns, for the audit (e.g. a passkey's id)
        self.person_id = person_id  # whose passkey failed: counted, never shown or audited

    @property
    def status(self) -> int:
        return FAILURES[self.code].status

    def message(self, lang: str = "ja") -> str:
        failure = FAILURES[self.code]
        return failure.en if lang == "en" else failure.ja
