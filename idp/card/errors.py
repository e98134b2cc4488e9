"""Every way a card sign-in can fail: one code, one HTTP status and one message in Japanese and
English each. Messages talk to the card holder about their own card only; none says or hints
whether any other person is enrolled.
"""

from __future__ import annotations

from phr_core.catalogs import LANGUAGES, Failure, failures, text

# Each code's HTTP status; its words are in the gettext catalogs under msgctxt
# `idp.card.error` (phr_core/translations, docs/translating.md).
_STATUS: dict[int, tuple[str, ...]] = {
    400: ("malformed_request", "certificate_unreadable"),
    401: ("wrong_pin",),
    403: (
        "self_signed",
        "unknown_ca",
        "certificate_expired",
        "certificate_not_yet_valid",
        "wrong_key_usage",
        "wrong_certificate_type",
        "bad_signature",
        "certificate_revoked",
        "certificate_superseded",
        "certificates_not_paired",
        "renewal_person_mismatch",
    ),
    404: ("session_not_found",),
    409: ("enrollment_required", "challenge_used"),
    410: ("challenge_expired",),
    423: ("card_locked",),
    429: ("too_many_attempts",),
    500: ("internal_error",),
    503: ("revocation_unavailable", "renewal_check_unavailable"),
}
FAILURES: dict[str, Failure] = failures("idp.card.error", _STATUS)


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
        lang = lang if lang in LANGUAGES else "en"
        base = self.failure.message(lang)
        if self.tries_left is None:
            return base
        return text(lang, "idp.card", "tries_left").format(message=base, n=self.tries_left)

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}"
