"""Every way a sign-in through the authentication app can fail: one code, one HTTP status, one
message in Japanese and English (beside idp/card/errors.py, the card pages' own words). The
messages speak about this sign-in only; none says whether anyone else is enrolled."""

from __future__ import annotations

from phr_core.catalogs import Failure, failures, tables

# The words are in the gettext catalogs (phr_core/translations, msgctxt idp.card.app.error and
# idp.card.app); the statuses are here.
_STATUS: dict[int, tuple[str, ...]] = {
    400: ("state_mismatch", "session_expired", "nonce_mismatch"),
    403: ("access_denied", "acr_insufficient"),
    409: ("relink_ambiguous",),
    500: ("internal_error",),
    502: (
        "id_token_audience",
        "id_token_expired",
        "id_token_signature",
        "id_token_invalid",
        "token_refused",
        "upstream_error",
        "attributes_missing",
    ),
    503: ("upstream_unreachable",),
}
FAILURES: dict[str, Failure] = failures("idp.card.app.error", _STATUS)
PAGE_TEXTS: dict[str, dict[str, str]] = tables("idp.card.app")


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
        return self.failure.message(lang)
