"""The gettext catalogs: Babel reads them, every language says every message, the translators'
`pybabel extract/update/compile` cycle leaves them as they are, and every key the code and
templates name is in them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from phr_core import catalogs
from phr_core.catalogs import LANGUAGES, TRANSLATIONS, po_path

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _read(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, abort_invalid=True)


def _messages(catalog: Catalog) -> dict[tuple[str | None, str], str]:
    return {(m.context, str(m.id)): str(m.string) for m in catalog if m.id}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogs_parse_with_babel_without_duplicates(lang: str) -> None:
    path = po_path(lang)
    catalog = _read(path, lang)
    assert str(catalog.locale) == lang
    # Babel's reader folds a repeated msgctxt/msgid into one entry: count them in the text.
    written = len(re.findall(r'^msgid "', path.read_text("utf-8"), re.MULTILINE)) - 1  # header
    assert written == len(catalog)
    # The plural rule is the language's own (CLDR), and Babel's checkers find nothing.
    assert catalog.plural_forms == Catalog(locale=lang).plural_forms
    assert [(m.id, errors) for m, errors in catalog.check()] == []
    assert not catalog.fuzzy and not any(m.fuzzy for m in catalog if m.id)
    assert not catalog.obsolete


def test_every_message_has_a_text_in_every_language() -> None:
    source = _messages(_read(po_path(LANGUAGES[0])))
    assert len(source) > 300 and all(context for context, _ in source)
    for lang in LANGUAGES:
        texts = _messages(_read(po_path(lang)))
        assert texts.keys() == source.keys(), lang
        assert [key for key, text in texts.items() if not text.strip()] == [], lang
        # `{app}` in one language is `{app}` in every other: str.format fills them all.
        for key, text in texts.items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source[key])), key


def test_the_pybabel_cycle_leaves_the_catalogs_as_they_are(tmp_path: Path) -> None:
    """What docs/translating.md tells a translator to run: no key missing, none obsolete."""
    pybabel = [sys.executable, "-m", "babel.messages.frontend"]  # the `pybabel` command
    copy = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, copy)
    template = tmp_path / "messages.pot"

    def run(*args: str) -> None:
        subprocess.run([*pybabel, *args], cwd=ROOT, check=True, capture_output=True)

    run("extract", "-F", "babel.cfg", "--no-location", "-o", str(template), ".")
    extracted = _read(template)
    assert {(m.context, m.id) for m in extracted if m.id} == set(_messages(catalogs.catalog("ja")))
    run("update", "-w", "100", "-i", str(template), "-d", str(copy))
    run("compile", "-d", str(copy))
    for lang in LANGUAGES:
        updated = _read(copy / lang / "LC_MESSAGES" / "messages.po", lang)
        assert _messages(updated) == _messages(catalogs.catalog(lang))
        assert not updated.obsolete and not any(m.fuzzy for m in updated if m.id)
        assert (copy / lang / "LC_MESSAGES" / "messages.mo").stat().st_size > 0


def test_a_key_missing_from_the_catalogs_fails_loudly() -> None:
    assert catalogs.text("en", "portal", "title") == "My Health Record Portal"
    with pytest.raises(KeyError):
        catalogs.text("ja", "portal", "no_such_key")
    with pytest.raises(KeyError):
        catalogs.keys("no.such.family")
    with pytest.raises(KeyError):
        catalogs.failures("idp.card.error", {400: ("malformed_request",)})


# How the code and the templates name a message: `t.key` / `w.key` / `plus_t.key` in
# templates, `t["key"]`, `MESSAGES[lang]["key"]`, `texts(lang)["key"]`, ... in Python.
_TEMPLATE_USE = re.compile(r"\b(?:t|w|plus_t)\.([a-z][a-z0-9_]*)\b")
_PYTHON_USE = re.compile(
    r"(?:\bt|\bw|MESSAGES\[lang\]|WORDS\[lang\]|texts\(lang\)|words\(lang\)|messages\(lang\))"
    r"\[\"([a-z][a-z0-9_]*)\"\]"
)
_MAPPING_METHODS = {"get", "items", "keys", "values"}
_PACKAGES = ("portal", "consent", "idp", "phr_core")


def _sources(pattern: str) -> list[Path]:
    return [p for package in _PACKAGES for p in (ROOT / package).rglob(pattern)]


def test_every_key_the_pages_name_is_in_the_catalogs() -> None:
    known = {str(m.id) for m in catalogs.catalog(LANGUAGES[0]) if m.id}
    used: dict[str, set[str]] = {}
    for path in _sources("*.html"):
        for key in _TEMPLATE_USE.findall(path.read_text("utf-8")):
            used.setdefault(key, set()).add(path.name)
    for path in _sources("*.py"):
        for key in _PYTHON_USE.findall(path.read_text("utf-8")):
            used.setdefault(key, set()).add(path.name)
    assert len(used) > 150  # the scan still sees the pages
    missing = {key: sorted(where) for key, where in used.items() if key not in known}
    assert {k: v for k, v in missing.items() if k not in _MAPPING_METHODS} == {}


def test_every_refusal_code_raised_has_words() -> None:
    from idp.card.errors import FAILURES as CARD
    from idp.passkey.errors import FAILURES as PASSKEY

    raised = re.compile(r"\b(CardError|PasskeyError)\(\s*\"(\w+)\"")
    seen = 0
    for path in _sources("*.py"):
        for kind, code in raised.findall(path.read_text("utf-8")):
            assert code in (CARD if kind == "CardError" else PASSKEY), (path.name, code)
            seen += 1
    assert seen > 20


JAPANESE = "\u3040-\u30ff\u4e00-\u9fff\u3000-\u303f\uff00-\uffef"
SPACED = re.compile(rf"[{JAPANESE}] [A-Za-z0-9{{]|[A-Za-z0-9}})] [{JAPANESE}]")


def test_japanese_text_has_no_ascii_space_beside_latin_words_or_placeholders() -> None:
    """ "{app} を利用する" reads as a stray gap once the name is filled in: Japanese text runs on
    into a Latin word, a number or a placeholder, as Japanese typesetting does (issue 17)."""
    spaced = {
        key: text
        for key, text in _messages(_read(po_path("ja"), "ja")).items()
        if SPACED.search(text)
    }
    assert not spaced, spaced
