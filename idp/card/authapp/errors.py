"""Every way a sign-in through the authentication app can fail: one code, one HTTP status, one
message in Japanese and English (beside idp/card/errors.py, the card pages' own words). The
messages speak about this sign-in only; none says whether anyone else is enrolled."""

from __future__ import annotations

from idp.card.errors import Failure

_FAILURES: tuple[Failure, ...] = (
    Failure(
        "access_denied",
        403,
        "デジタル認証アプリでの本人確認が取り消されました。もう一度お試しください。",
        "Identity verification in the Digital Authentication App was cancelled. Try again.",
    ),
    Failure(
        "state_mismatch",
        400,
        "このブラウザーで始めたサインインではありません。最初からやり直してください。",
        "This sign-in was not started in this browser. Start again from the beginning.",
    ),
    Failure(
        "session_expired",
        400,
        "サインインの有効時間（5分）が過ぎたか、すでに使われています。最初からやり直してください。",
        "The sign-in timed out (5 minutes) or was already used. Start again from the beginning.",
    ),
    Failure(
        "nonce_mismatch",
        400,
        "デジタル認証アプリからの応答がこのサインインのものではありません。最初からやり直してください。",
        "The answer from the Digital Authentication App does not belong to this sign-in. "
        "Start again.",
    ),
    Failure(
        "id_token_audience",
        502,
        "デジタル認証アプリからの応答が、このサービス宛てではありませんでした。",
        "The answer from the Digital Authentication App was not addressed to this service.",
    ),
    Failure(
        "id_token_expired",
        502,
        "デジタル認証アプリからの応答の有効期限が切れていました。もう一度お試しください。",
        "The answer from the Digital Authentication App had expired. Try again.",
    ),
    Failure(
        "id_token_signature",
        502,
        "デジタル認証アプリからの応答の署名を確認できませんでした。",
        "The signature on the answer from the Digital Authentication App could not be verified.",
    ),
    Failure(
        "id_token_invalid",
        502,
        "デジタル認証アプリからの応答が正しくありません。",
        "The answer from the Digital Authentication App is not valid.",
    ),
    Failure(
        "acr_insufficient",
        403,
        "マイナンバーカードによる本人確認の水準が足りません。",
        "The identity verification did not reach the level this service needs.",
    ),
    Failure(
        "token_refused",
        502,
        "デジタル認証アプリのサービスがサインインを受け付けませんでした。もう一度お試しください。",
        "The Digital Authentication App service did not accept the sign-in. Try again.",
    ),
    Failure(
        "upstream_unreachable",
        503,
        "デジタル認証アプリのサービスに接続できません。しばらくしてからお試しください。",
        "The Digital Authentication App service cannot be reached. Try again later.",
    ),
    Failure(
        "upstream_error",
        502,
        "デジタル認証アプリのサービスから予期しない応答がありました。しばらくしてからお試しください。",
        "The Digital Authentication App service answered unexpectedly. Try again later.",
    ),
    Failure(
        "attributes_missing",
        502,
        "初回登録に必要な基本4情報（氏名・住所・生年月日・性別）を受け取れませんでした。",
        "The four basic attributes needed to enrol (name, address, birth date, sex) "
        "did not arrive.",
    ),
    Failure(
        "relink_ambiguous",
        409,
        "カードの更新後の本人確認を自動で行えませんでした。市区町村の窓口でご相談ください。",
        "Your renewed card could not be matched to your account automatically. "
        "Please ask at your city office.",
    ),
    Failure(
        "internal_error",
        500,
        "サインインを完了できませんでした。しばらくしてからお試しください。",
        "The sign-in could not be completed. Try again later.",
    ),
)

FAILURES: dict[str, Failure] = {f.code: f for f in _FAILURES}

PAGE_TEXTS = {
    "ja": {
        "title": "デジタル認証アプリでサインイン",
        "button": "デジタル認証アプリでサインイン",
        "help": "スマートフォンのデジタル認証アプリでマイナンバーカードを読み取ります。",
        "failed": "サインインできませんでした",
        "again": "サインインをやり直す",
    },
    "en": {
        "title": "Sign in with the Digital Authentication App",
        "button": "Sign in with the Digital Authentication App",
        "help": "Your My Number card is read by the Digital Authentication App on your phone.",
        "failed": "Sign-in failed",
        "again": "Start the sign-in again",
    },
}


class AppError(Exception):
    def __init__(self, code: str) -> None:
        self.failure = FAILURES.get(code) or FAILURES["internal_error"]
        super().__init__(self.failure.code)

    @property
    def code(self) -> str:
        return self.failure.code

    @property
    def status(self) -> int:
        return self.failure.status

    def message(self, lang: str) -> str:
        return self.failure.en if lang == "en" else self.failure.ja
