"""What a card reader or the card in it can answer, each with its own message in Japanese and
English for the person at the reader. Client-side only (the IdP never sees these): the codes
are for the CLI's exit status and the tests, the messages for the person."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "reader_support_missing": (
        "カードリーダーを使う機能が入っていません（pip install 'phr[reader]'、"
        "Debian では pcscd と libpcsclite1 も必要です）。",
        "Card-reader support is not installed (pip install 'phr[reader]'; on Debian also "
        "pcscd and libpcsclite1).",
    ),
    "no_reader": (
        "カードリーダーが見つかりません。リーダーをつないで、PC/SC サービス（pcscd）が"
        "動いていることを確かめてください。",
        "No card reader found. Plug in a reader and check that the PC/SC service (pcscd) is "
        "running.",
    ),
    "unknown_reader": (
        "指定されたカードリーダーが見つかりません。phr card readers で名前を確かめてください。",
        "The reader named was not found. See `phr card readers` for the names.",
    ),
    "no_card": (
        "カードがリーダーに置かれていません。マイナンバーカードをリーダーに置いてください。",
        "There is no card in the reader. Put your My Number card on the reader.",
    ),
    "not_my_number_card": (
        "このカードはマイナンバーカードではありません（公的個人認証の電子証明書がありません）。",
        "This is not a My Number card (it has no JPKI certificate application).",
    ),
    "no_certificate": (
        "カードに電子証明書が入っていません。電子証明書の発行を市区町村の窓口で受けてください。",
        "The card holds no certificate. Have one issued at your city office.",
    ),
    "pin_format": (
        "利用者証明用電子証明書の暗証番号は数字4桁です。",
        "The user-authentication PIN is 4 digits.",
    ),
    "sign_pin_format": (
        "署名用電子証明書の暗証番号は英大文字と数字の6〜16桁です。",
        "The signature PIN is 6 to 16 upper-case letters and digits.",
    ),
    "wrong_pin": ("暗証番号が違います。", "Wrong PIN."),
    "pin_locked": (
        "暗証番号を続けて間違えたため、この電子証明書はロックされています。"
        "市区町村の窓口で暗証番号の初期化を受けてください。",
        "This certificate is locked after too many wrong PINs. Have the PIN reset at your "
        "city office.",
    ),
    "card_removed": (
        "読み取りの途中でカードが離れました。カードをリーダーに置いたまま、もう一度お試しください。",
        "The card was removed while it was being read. Keep it on the reader and try again.",
    ),
    "reader_unplugged": (
        "読み取りの途中でカードリーダーが外れたか、PC/SC サービスが止まりました。"
        "つなぎ直してから、もう一度お試しください。",
        "The card reader was unplugged (or the PC/SC service stopped) while reading. "
        "Reconnect it and try again.",
    ),
    "card_busy": (
        "ほかのプログラムがこのカードを使っています。終わってからお試しください。",
        "Another program is using this card. Try again when it has finished.",
    ),
    "card_error": (
        "カードが想定しない応答をしました。カードを置き直して、もう一度お試しください。",
        "The card gave an unexpected answer. Put it on the reader again and retry.",
    ),
}


class ReaderError(Exception):
    """A reader or card answer; `message(lang)` is what the person at the reader reads."""

    def __init__(self, code: str, tries_left: int | None = None, detail: str = "") -> None:
        if code not in MESSAGES:
            raise ValueError(f"unknown reader error code {code!r}")
        super().__init__(code)
        self.code = code
        self.tries_left = tries_left  # wrong_pin only
        self.detail = detail  # a status word or PC/SC code, for the log; never a PIN

    def message(self, lang: str = "ja") -> str:
        ja, en = MESSAGES[self.code]
        if lang == "ja":
            return ja if self.tries_left is None else f"{ja}（残り{self.tries_left}回）"
        return en if self.tries_left is None else f"{en} ({self.tries_left} tries left)"

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}" + (f" [{self.detail}]" if self.detail else "")
