"""The platform's words: one gettext catalog per language, Japanese first.

Every page's text lives in `phr_core/translations/<lang>/LC_MESSAGES/messages.po`, one domain
for all services so a translator works in one file per language with standard tools (Poedit,
Weblate, `pybabel`; docs/translating.md). Messages are keyed: `msgctxt` names the page family
(`portal`, `idp.passkey`, `scope`, ...), `msgid` the key the code and templates already use
(`t.sign_in`), and the Japanese catalog is the source text.

The `.po` files are read and compiled in memory on first use (Babel's own reader and writer),
so a fresh clone runs with no build step and no binary `.mo` is committed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

# The first language is the default and the source of every message.
LANGUAGES = ("ja", "en")
DOMAIN = "messages"
TRANSLATIONS = Path(__file__).parent / "translations"


def po_path(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalog(lang: str) -> Catalog:
    """The parsed `.po` of one language (Babel's reader: a syntax error fails loudly)."""
    if lang not in LANGUAGES:
        raise KeyError(f"no catalog for language {lang!r}")
    with po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN, abort_invalid=True)


@cache
def translations(lang: str) -> Translations:
    """The language's catalog compiled in memory, as gettext reads a `.mo`."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog(lang))
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def text(lang: str, context: str, key: str) -> str:
    """One message; a key missing or untranslated is a programming error, not a blank page."""
    message = catalog(lang).get(key, context=context)
    if message is None or not message.string:
        raise KeyError(f"no {lang} text for msgctxt {context!r} msgid {key!r}")
    return str(translations(lang).pgettext(context, key))


@cache
def table(lang: str, context: str) -> dict[str, str]:
    """Every message of one page family as the mapping the templates read (`t.key`).

    The keys come from the source (Japanese) catalog, in its order, so every language has
    the same keys; each value goes through gettext.
    """
    return {key: text(lang, context, key) for key in keys(context)}


def keys(context: str) -> list[str]:
    """The keys of one page family, as the source catalog lists them."""
    found = [m.id for m in catalog(LANGUAGES[0]) if m.id and m.context == context]
    if not found:
        raise KeyError(f"no messages with msgctxt {context!r}")
    return [str(key) for key in found]


def tables(context: str) -> dict[str, dict[str, str]]:
    """`table` for every language: the `{lang: {key: text}}` shape the word modules export."""
    return {lang: table(lang, context) for lang in LANGUAGES}


@dataclass(frozen=True)
class Failure:
    """A refusal: its code, its HTTP status, and its words under msgctxt `context`."""

    context: str
    code: str
    status: int

    def message(self, lang: str) -> str:
        """In the person's language; anything else gets the first (Japanese)."""
        return text(lang if lang in LANGUAGES else LANGUAGES[0], self.context, self.code)

    @property
    def ja(self) -> str:
        return self.message("ja")

    @property
    def en(self) -> str:
        return self.message("en")


def failures(context: str, statuses: Mapping[int, tuple[str, ...]]) -> dict[str, Failure]:
    """Every refusal of `context` in catalog order, with its status from `statuses`.

    A code with words but no status, or a status for a code without words, fails at import.
    """
    status_of = {code: status for status, codes in statuses.items() for code in codes}
    worded = keys(context)
    if set(worded) != set(status_of):
        missing = set(worded) ^ set(status_of)
        raise KeyError(f"{context}: codes without both words and a status: {sorted(missing)}")
    return {code: Failure(context, code, status_of[code]) for code in worded}


def extract_source(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, tuple[str, str], list[str]]]:
    """A Babel extraction method (babel.cfg) that reads the keys from the source catalog.

    The code and templates look messages up by key (`t.sign_in`), which no gettext keyword
    marks, so the source-language catalog is where keys are declared: `pybabel extract`
    turns it into `messages.pot`, with the Japanese text as the comment a translator reads,
    and `pybabel update` then carries new and removed keys into every other language.
    """
    for message in read_po(fileobj, abort_invalid=True):
        if message.id and message.context:
            line = message.lineno or 0
            yield line, "pgettext", (message.context, str(message.id)), [str(message.string)]
