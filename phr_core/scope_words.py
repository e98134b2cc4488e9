"""OAuth scopes in plain words, one vocabulary for the IdP's consent screen and the portal's
"who can see my data" page, so a person recognises on one what they approved on the other.

The words are in the gettext catalogs under msgctxt `scope` (docs/translating.md): whole
sentences per scope shape (`patient.read`: "{name}を見る" / "Read your {name}"), so each
language orders its own words.
"""

from __future__ import annotations

import re

from phr_core.catalogs import LANGUAGES, keys, text

SMART_RE = re.compile(
    r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(\?[^\s]+)?$"
)
_CONTEXT = "scope"
# Scopes that are not SMART resource scopes, each with its own sentence.
_PLAIN = ("openid", "offline_access", "consent/notices.read", "launch/patient")
_RESOURCE = "resource."
_FILTER = "filter."


def _words(lang: str, key: str) -> str:
    return text(lang, _CONTEXT, key)


# Each resource type in words, (Japanese, English): the portal's access history reads these.
RESOURCE_NAMES: dict[str, tuple[str, str]] = {
    key.removeprefix(_RESOURCE): (_words("ja", key), _words("en", key))
    for key in keys(_CONTEXT)
    if key.startswith(_RESOURCE)
}

# Granular SMART v2 filters in words (`?category=SYSTEM|CODE`, or the bare code); others are
# shown as written.
_HL7_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_JP_CATEGORY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
_CATEGORIES = (
    (_JP_CATEGORY, "body-measurement"),
    (_HL7_CATEGORY, "vital-signs"),
    (_HL7_CATEGORY, "laboratory"),
    (_HL7_CATEGORY, "exam"),
)
FILTER_NAMES: dict[tuple[str, str], str] = {
    ("category", value): f"{_FILTER}category.{code}"
    for system, code in _CATEGORIES
    for value in (f"{system}|{code}", code)
}


def _filter_words(query: str, lang: str) -> str:
    """`?category=http://…|body-measurement` → 身体計測のみ / body measurements only."""
    name, _, value = query[1:].partition("=")
    key = FILTER_NAMES.get((name, value))
    return query[1:] if key is None else _words(lang, key)


def describe(scope: str, lang: str) -> str:
    """A scope in plain words, in `lang` (English for a language without a catalog)."""
    lang = lang if lang in LANGUAGES else "en"
    if scope in _PLAIN:
        return _words(lang, scope)
    m = SMART_RE.match(scope)
    if not m:
        return scope
    context, resource, perms, query = m.groups()
    writes = perms in ("write", "*") or any(c in perms for c in "cud")
    # `patient/` opens the one record chosen; `user/` everyone the person may see (only the
    # platform's own portal holds it: idp.scopes.app_scope_refusal), and says so.
    whose = "user" if context == "user" else "patient"
    sentence = _words(lang, f"{whose}.{'write' if writes else 'read'}")
    name = _words(lang, _RESOURCE + resource) if resource in RESOURCE_NAMES else resource
    words = sentence.format(name=name)
    if query:
        words = _words(lang, "filtered").format(text=words, filter=_filter_words(query, lang))
    return words
