"""What the "+ services" pages share: rendering with their words, the signed-in person's people
(themself and their children, as Patients from the PHR server labelled with the relationship
the consent service records), and turning PHR-client errors into pages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Response, g, session
from flask.typing import ResponseReturnValue

from consent.i18n import current_language, messages
from portal import pages, phr
from portal.federated import Reader, Source
from portal.plus_words import WORDS
from portal.session import TOKENS, current_subject, sign_in_first


def words(lang: str) -> dict[str, str]:
    return {**messages(lang), **WORDS[lang]}


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A personal page (never cached) in the person's language, with the '+ services' words
    and the cities whose PHR server could not be read in this request (if any)."""
    found = g.get("phr_reader")
    if isinstance(found, Reader) and "unreachable" not in context:
        context["unreachable"] = found.unreachable_cities(current_language())
    resp = pages.render(template, status, words, **context)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def problem(key: str, status: int) -> Response:
    return page("error.html", status=status, code=status, message_key=key)


def signed_in_page(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Sign-in required; PHR-client errors become a sign-in (tokens gone), a 404 page (not
    this person's) or a 503 page (the PHR server is down)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if current_subject() is None:
            return sign_in_first()
        try:
            return view(*args, **kwargs)
        except phr.SignedOut:
            session.pop(TOKENS, None)
            return sign_in_first()
        except phr.NotReachable:
            return problem("not_found", 404)
        except phr.Unavailable:
            return problem("phr_unavailable", 503)

    return wrapper


@dataclass(frozen=True)
class Person:
    id: str  # a Patient id at a PHR server (the first of `sources`): the pages' URLs name it
    relationship: str  # self | child
    birth_date: date | None
    sex: str | None
    sources: tuple[Source, ...] = ()  # the Patients that are this person, one per city

    def label(self, lang: str) -> str:
        t = WORDS[lang]
        if self.relationship == "self":
            return t["you"]
        sex = t.get(f"sex_{self.sex}", t["sex_other"])
        birth = self.birth_date.strftime("%Y-%m") if self.birth_date else "?"
        return t["child_label"].format(birth=birth, sex=sex)

    def age(self, lang: str, today: date | None = None) -> str:
        if self.birth_date is None:
            return ""
        today = today or date.today()
        months = (today.year - self.birth_date.year) * 12 + today.month - self.birth_date.month
        if today.day < self.birth_date.day:
            months -= 1
        t = WORDS[lang]
        if months < 12:
            return t["age_months"].format(months=max(months, 0))
        return t["age_years"].format(years=months // 12, months=months % 12)

    @property
    def ids(self) -> set[str]:
        return {s.patient_id for s in self.sources} | {self.id}


def people(found: Reader) -> list[Person]:
    """The person's people (self first, then children, youngest last), each gathering their
    Patients in every city: the person is one person wherever they lived, and a child found
    in two cities with the same birth date and sex is one child that moved. Two such children
    in one city (twins) are never merged: each city's records stay apart then."""
    groups: dict[tuple[str, str, str], list[tuple[Source, dict[str, Any]]]] = {}
    for src, pt in found.patients():
        key = ("self", "", "") if src.relationship == "self" else (
            "child", str(pt.get("birthDate", ""))[:10], str(pt.get("gender", ""))
        )  # fmt: skip
        groups.setdefault(key, []).append((src, pt))
    if found.everything_failed:
        raise phr.Unavailable("no PHR server holding these records can be reached")
    out = []
    for (rel, _, _), members in groups.items():
        cities = [src.municipality for src, _ in members]
        parts = [members] if rel == "self" or len(set(cities)) == len(cities) else [
            [m] for m in members
        ]  # fmt: skip
        for part in parts:
            part.sort(key=lambda m: m[0].patient_id)
            first = part[0][1]
            try:
                birth = date.fromisoformat(str(first.get("birthDate", ""))[:10])
            except ValueError:
                birth = None
            srcs = tuple(m[0] for m in part)
            out.append(Person(srcs[0].patient_id, rel, birth, first.get("gender"), srcs))
    out.sort(key=lambda p: (p.relationship != "self", p.birth_date or date.min, p.id))
    return out


def find(found: Reader, all_people: list[Person], pid: str, *, child: bool = False) -> Person:
    """The person `pid` names; when it is not among them but a server could not be read, the
    page cannot be shown now (503) rather than "not yours" (404)."""
    for p in all_people:
        if pid in p.ids and (not child or p.relationship == "child"):
            return p
    if found.failed:
        raise phr.Unavailable("the PHR server holding this record cannot be reached")
    raise phr.NotReachable("not one of this person's Patients")


def city_of(found: Reader, src: Source, lang: str) -> str:
    return found.city(src.municipality, lang)
