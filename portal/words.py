"""OAuth scopes in plain words for the portal's pages: the IdP's consent-screen wording
(phr_core.scope_words), each distinct description once."""

from __future__ import annotations

from phr_core.scope_words import describe


def describe_all(scopes: list[str], lang: str) -> list[str]:
    """Each distinct description once, in the order the scopes came."""
    return list(dict.fromkeys(describe(s, lang) for s in scopes))
