"""Every way the phone path can refuse: one code, one HTTP status, one message in Japanese and
English. Messages speak about the code or the passkey in the person's own hands; none says
whether any person is enrolled or any other passkey exists (sign-in asks for no name, so there
is nothing to probe with; a credential id is a random value only its authenticator knows)."""

from __future__ import annotations

from phr_core.catalogs import Failure, failures

# Each code's HTTP status; its words are in the gettext catalogs under msgctxt
# `idp.passkey.error` (phr_core/translations, docs/translating.md).
_STATUS: dict[int, tuple[str, ...]] = {
    400: (
        "csrf",
        "bad_input",
        "not_confirmed",
        "code_wrong",
        "malformed_request",
        "challenge_unknown",
        "wrong_origin",
        "user_verification_required",
        "registration_failed",
    ),
    401: ("bad_credentials", "staff_signed_out", "credential_unknown", "bad_signature"),
    403: ("sign_count_regressed", "card_required"),
    404: ("person_not_found",),
    409: ("person_ambiguous", "code_used", "challenge_used"),
    410: ("code_expired", "challenge_expired", "request_expired"),
    423: ("staff_locked",),
    429: ("too_many_attempts", "sign_in_paused"),
    503: ("passkeys_unavailable",),
}
FAILURES: dict[str, Failure] = failures("idp.passkey.error", _STATUS)


class PasskeyError(Exception):
    """A refusal with its code; `message(lang)` is safe to show to whoever sent the request."""

    def __init__(self, code: str, ref: str | None = None, person_id: str | None = None) -> None:
        if code not in FAILURES:
            raise ValueError(f"unknown passkey failure code {code!r}")
        super().__init__(code)
        self.code = code
        self.ref = ref  # what the refusal concerns, for the audit (e.g. a passkey's id)
        # whose passkey failed after its signature verified: counted, never shown or audited
        self.person_id = person_id

    @property
    def status(self) -> int:
        return FAILURES[self.code].status

    def message(self, lang: str = "ja") -> str:
        return FAILURES[self.code].message(lang)
