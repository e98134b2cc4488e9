"""One description of an app's access, for the IdP's consent screen and the portal's "who can
see my data" page, so a parent reads the same facts in the same words before and after saying
yes: the app's publisher, its purpose, whose record, which data, until when, and its privacy
policy and terms.

The facts (`GrantFacts`) are taken from the client's registered metadata when the consent
screen is shown, travel with the grant to the consent service (its `details`), and come back to
the portal from there; `describe` turns them into labelled lines whose words are in the gettext
catalogs under msgctxt `grant` (docs/translating.md). Both pages render the lines; neither
words a fact itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from babel.dates import format_date

from phr_core.catalogs import LANGUAGES, text
from phr_core.scope_words import describe as scope_words

_CONTEXT = "grant"
JST = timezone(timedelta(hours=9), "JST")
# Metadata a person reads, each possibly localized as `key#ja` / `key#en` (RFC 7591 2.2).
# `organization_name` is OpenID Federation's common metadata for who runs an entity.
PUBLISHER = "organization_name"
PURPOSE = "purpose"
POLICY = "policy_uri"
TERMS = "tos_uri"
# Scopes that are about the sign-in itself, not a kind of data: never a checkbox.
_NOT_DATA = ("openid", "offline_access", "launch/patient", "launch")

Localized = Mapping[str, str]


def words(lang: str, key: str) -> str:
    return text(lang if lang in LANGUAGES else LANGUAGES[0], _CONTEXT, key)


def localized(meta: Mapping[str, Any], key: str) -> dict[str, str]:
    """`{lang: value}` of one metadata field, each language falling back to the plain value and
    then to any other language's (so a Japanese-only app still shows its words in English)."""
    plain = meta.get(key)
    found = {lang: meta.get(f"{key}#{lang}") or plain for lang in LANGUAGES}
    anyone = next((v for v in found.values() if isinstance(v, str) and v), "")
    return {lang: v if isinstance(v, str) and v else anyone for lang, v in found.items()}


def is_data_scope(scope: str) -> bool:
    """A kind of data the person may untick (SMART resource scopes), not the sign-in itself."""
    return scope not in _NOT_DATA and "/" in scope and not scope.startswith("launch/")


@dataclass(frozen=True)
class PatientFacts:
    """Whose record an app opens, as the person recognises it: never a name or a code."""

    relationship: str  # self | child
    city: str
    city_en: str
    birth_month: str | None = None  # YYYY-MM, for a child

    def label(self, lang: str) -> str:
        city = self.city_en if lang == "en" else self.city
        if self.relationship == "self":
            return words(lang, "patient_self").format(city=city)
        year, month = (self.birth_month or "0-0").split("-")
        return words(lang, "patient_child").format(year=year, month=int(month), city=city)

    def to_json(self) -> dict[str, str | None]:
        return {
            "relationship": self.relationship,
            "city": self.city,
            "city_en": self.city_en,
            "birth_month": self.birth_month,
        }

    @classmethod
    def from_json(cls, doc: object) -> PatientFacts | None:
        if not isinstance(doc, dict) or not doc.get("relationship"):
            return None
        month = doc.get("birth_month")
        return cls(
            str(doc["relationship"]),
            str(doc.get("city", "")),
            str(doc.get("city_en") or doc.get("city", "")),
            str(month) if month else None,
        )


@dataclass(frozen=True)
class GrantFacts:
    """What a person is told about one app's access (each text in every language)."""

    app: Localized
    scopes: tuple[str, ...]
    expires: datetime | None
    publisher: Localized = field(default_factory=dict)
    purpose: Localized = field(default_factory=dict)
    policy_uri: Localized = field(default_factory=dict)
    tos_uri: Localized = field(default_factory=dict)
    patient: PatientFacts | None = None

    @classmethod
    def of_client(
        cls,
        client_name: str,
        meta: Mapping[str, Any],
        scopes: Sequence[str],
        expires: datetime | None,
        patient: PatientFacts | None = None,
    ) -> GrantFacts:
        """The facts as the client registered them (`meta`: its RFC 7591 metadata)."""
        return cls(
            app=localized(
                {**meta, "client_name": meta.get("client_name") or client_name}, "client_name"
            ),
            scopes=tuple(scopes),
            expires=expires,
            publisher=localized(meta, PUBLISHER),
            purpose=localized(meta, PURPOSE),
            policy_uri=localized(meta, POLICY),
            tos_uri=localized(meta, TERMS),
            patient=patient,
        )

    def details(self) -> dict[str, object]:
        """What the consent service keeps with the grant (`details`), for the portal."""
        return {
            "app": dict(self.app),
            "publisher": dict(self.publisher),
            "purpose": dict(self.purpose),
            "policy_uri": dict(self.policy_uri),
            "tos_uri": dict(self.tos_uri),
            "patient": self.patient.to_json() if self.patient else None,
        }

    @classmethod
    def of_grant(
        cls,
        details: Mapping[str, Any] | None,
        *,
        app: str,
        scopes: Sequence[str],
        expires: datetime | None,
        purpose: str,
    ) -> GrantFacts:
        """The facts back from a recorded grant; one recorded before `details` existed keeps
        its name and purpose and shows the rest as not stated."""
        d = details or {}

        def texts(key: str, fallback: str = "") -> dict[str, str]:
            value = d.get(key)
            if isinstance(value, dict):
                return {lang: str(value.get(lang) or "") for lang in LANGUAGES}
            return {lang: fallback for lang in LANGUAGES}

        return cls(
            app=texts("app", app),
            scopes=tuple(scopes),
            expires=expires,
            publisher=texts("publisher"),
            purpose=texts("purpose", purpose),
            policy_uri=texts("policy_uri"),
            tos_uri=texts("tos_uri"),
            patient=PatientFacts.from_json(d.get("patient")),
        )


@dataclass(frozen=True)
class Line:
    """One labelled fact. `flagged`: the app did not state it, which the person should see."""

    key: str
    label: str
    text: str = ""
    items: tuple[tuple[str, str], ...] = ()  # (value, words): the data types, or the links
    flagged: bool = False


@dataclass(frozen=True)
class GrantDescription:
    app: str
    lines: tuple[Line, ...]
    record_label: str = ""  # the "whose record" label, for a page that asks to choose
    choose_hint: str = ""  # how to untick data, for a page that asks to choose

    def line(self, key: str) -> Line:
        return next(x for x in self.lines if x.key == key)


def day(value: datetime, lang: str) -> str:
    """A date as the person's calendar has it (JST), in their language's long form."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_date(value.astimezone(JST).date(), format="long", locale=lang)


def describe(facts: GrantFacts, lang: str) -> GrantDescription:
    """The facts in `lang`, in the order both pages show them."""
    lang = lang if lang in LANGUAGES else LANGUAGES[0]
    publisher = facts.publisher.get(lang, "")
    purpose = facts.purpose.get(lang, "")
    links = tuple(
        (uri, words(lang, key))
        for uri, key in (
            (facts.policy_uri.get(lang, ""), "policy"),
            (facts.tos_uri.get(lang, ""), "terms"),
        )
        if uri
    )
    data = tuple((sc, scope_words(sc, lang)) for sc in facts.scopes if is_data_scope(sc))
    lines = [
        Line("publisher", words(lang, "publisher"), publisher or words(lang, "publisher_missing"),
             flagged=not publisher),
        Line("purpose", words(lang, "purpose"), purpose or words(lang, "purpose_missing"),
             flagged=not purpose),
    ]  # fmt: skip
    if facts.patient is not None:
        lines.append(Line("record", words(lang, "record"), facts.patient.label(lang)))
    lines.append(
        Line("data", words(lang, "data"), "" if data else words(lang, "data_nothing"), data)
    )
    if any(sc == "offline_access" for sc in facts.scopes):
        lines.append(Line("offline", words(lang, "offline"), words(lang, "offline_text")))
    until = words(lang, "expires_on").format(date=day(facts.expires, lang)) if facts.expires else ""
    lines.append(Line("expires", words(lang, "expires"), until or words(lang, "expires_never")))
    lines.append(
        Line("links", words(lang, "links"), "" if links else words(lang, "links_missing"),
             items=links, flagged=not links)
    )  # fmt: skip
    app = facts.app.get(lang, "") or next(iter(facts.app.values()), "")
    return GrantDescription(app, tuple(lines), words(lang, "record"), words(lang, "data_choose"))
