"""Every way a card sign-in can fail: one code, one HTTP status and one message in Japanese and
English each. Messages talk to the card holder about their own card only; none says or hints
whether any other person is enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    code: str
    status: int
    ja: str
    en: str


_FAILURES: tuple[Failure, ...] = (
    Failure(
        "malformed_request",
        400,
        "送信された証明書または署名の形式が正しくありません。カード読み取りアプリからやり直してください。",
        "The certificate or signature sent is not well formed. "
        "Start again from the card-reader app.",
    ),
    Failure(
        "certificate_unreadable",
        400,
        "証明書を読み取れませんでした。マイナンバーカードの証明書ではない可能性があります。",
        "The certificate could not be read; it may not be a My Number card certificate.",
    ),
    Failure(
        "self_signed",
        403,
        "自己署名の証明書は受け付けられません。マイナンバーカードで署名してください。",
        "A self-signed certificate is not accepted. Sign with your My Number card.",
    ),
    Failure(
        "unknown_ca",
        403,
        "この証明書は信頼できる発行機関（地方公共団体情報システム機構）が発行したものではありません。",
        "This certificate was not issued by the trusted card authority (J-LIS).",
    ),
    Failure(
        "certificate_expired",
        403,
        "電子証明書の有効期限が切れています。市区町村の窓口で更新してください。",
        "The card's certificate has expired. Renew it at your city office.",
    ),
    Failure(
        "certificate_not_yet_valid",
        403,
        "電子証明書の有効期間がまだ始まっていません。時間をおいてからお試しください。",
        "The card's certificate is not valid yet. Try again later.",
    ),
    Failure(
        "wrong_key_usage",
        403,
        "この証明書は本人確認（署名）に使える鍵用途を持っていません。",
        "This certificate's key usage does not allow signing in.",
    ),
    Failure(
        "wrong_certificate_type",
        403,
        "証明書の種類が違います。ログインには利用者証明用電子証明書を、登録には署名用電子証明書も使います。",
        "Wrong kind of certificate: sign-in uses the user-authentication certificate, "
        "enrollment also the signature certificate.",
    ),
    Failure(
        "bad_signature",
        403,
        "署名を確認できませんでした。表示中の画面のコードでもう一度やり直してください。",
        "The signature could not be verified. Try again with the code on the current screen.",
    ),
    Failure(
        "certificate_revoked",
        403,
        "この電子証明書は失効しています。市区町村の窓口にお問い合わせください。",
        "This certificate has been revoked. Please contact your city office.",
    ),
    Failure(
        "certificate_superseded",
        403,
        "この電子証明書は更新済みです。更新後のカード（新しい証明書）でログインしてください。",
        "This certificate was replaced when the card was renewed. Sign in with the renewed card.",
    ),
    Failure(
        "revocation_unavailable",
        503,
        "証明書の失効確認ができないため、安全のためログインを中止しました。しばらくしてからお試しください。",
        "The certificate's revocation status cannot be checked right now, so sign-in was "
        "stopped for safety. Please try again later.",
    ),
    Failure(
        "certificates_not_paired",
        403,
        "利用者証明用と署名用の電子証明書が同じカードのものであることを確認できませんでした。",
        "The two certificates could not be shown to come from the same card.",
    ),
    Failure(
        "enrollment_required",
        409,
        "このカードでの初回利用です。登録のため署名用電子証明書（6〜16桁の暗証番号）でも署名してください。",
        "First use of this card: to enroll, also sign with the signature certificate "
        "(6–16 character PIN).",
    ),
    Failure(
        "renewal_person_mismatch",
        403,
        "更新前のカードの登録内容と一致しないため、自動で引き継げませんでした。窓口で確認を受けてください。",
        "The renewed card does not match what was registered with the previous card, so it "
        "could not be carried over automatically. Please have it checked at a counter.",
    ),
    Failure(
        "renewal_check_unavailable",
        503,
        "カード更新の引き継ぎ情報を確認できないため、登録を中止しました。しばらくしてからお試しください。",
        "The card-renewal records cannot be checked right now, so enrollment was stopped. "
        "Please try again later.",
    ),
    Failure(
        "session_not_found",
        404,
        "ログイン用のコードが見つかりません。画面に表示されたコードを確かめてください。",
        "No sign-in session has this code. Check the code shown on the screen.",
    ),
    Failure(
        "challenge_expired",
        410,
        "ログイン用のコードの有効期限（5分）が切れました。画面を更新して新しいコードでやり直してください。",
        "The sign-in code has expired (5 minutes). Reload the page and use the new code.",
    ),
    Failure(
        "challenge_used",
        409,
        "このログイン用のコードは使用済みです。画面を更新して新しいコードでやり直してください。",
        "This sign-in code has already been used. Reload the page and use the new code.",
    ),
    Failure(
        "internal_error",
        500,
        "内部エラーのためログインできませんでした。時間をおいてからお試しください。",
        "Sign-in failed because of an internal error. Please try again later.",
    ),
    Failure(
        "too_many_attempts",
        429,
        "サインインの失敗が続いたため、一時的にサインインを止めています。"
        "15 分ほどたってからお試しください。",
        "Sign-in is paused here after repeated failures. Please try again in about 15 minutes.",
    ),
    Failure(
        "wrong_pin",
        401,
        "暗証番号が違います。",
        "Wrong PIN.",
    ),
    Failure(
        "card_locked",
        423,
        "暗証番号を続けて間違えたため、この証明書はロックされています。市区町村の窓口で解除してください。",
        "This certificate is locked after too many wrong PINs. "
        "Have it unlocked at your city office.",
    ),
)

FAILURES: dict[str, Failure] = {f.code: f for f in _FAILURES}


class CardError(Exception):
    """A refusal with its code; `message(lang)` is safe to show to the person."""

    def __init__(self, code: str, tries_left: int | None = None) -> None:
        if code not in FAILURES:
            raise ValueError(f"unknown card failure code {code!r}")
        super().__init__(code)
        self.code = code
        self.tries_left = tries_left  # wrong_pin only: how many tries remain before the lock

    @property
    def failure(self) -> Failure:
        return FAILURES[self.code]

    @property
    def status(self) -> int:
        return self.failure.status

    def message(self, lang: str = "ja") -> str:
        if lang == "ja":
            base = self.failure.ja
            return base if self.tries_left is None else f"{base}（残り{self.tries_left}回）"
        base = self.failure.en
        return base if self.tries_left is None else f"{base} ({self.tries_left} tries left)"

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}"
