"""What the "+ services" pages share: rendering with their words, the signed-in person's people
(themself and their children, as Patients from the PHR server labelled with the relationship
the consent service records), and turning PHR-client errors into pages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Response, redirect, session
from flask.typing import ResponseReturnValue

from consent import linkage
from consent.i18n import messages
from consent.portal import phr
from consent.portal.auth import TOKENS, current_subject
from consent.portal.plus_words import WORDS
from consent.portal.views import _page
from phr_core.identifiers import pseudonym_system
from phr_core.webapp import database


def words(lang: str) -> dict[str, str]:
    return {**messages(lang), **WORDS[lang]}


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A personal page (never cached) in the person's language, with the '+ services' words."""
    resp = _page(template, status, words, **context)
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
            return redirect("/auth/login")
        try:
            return view(*args, **kwargs)
        except phr.SignedOut:
            session.pop(TOKENS, None)
            return redirect("/auth/login")
        except phr.NotReachable:
            return problem("not_found", 404)
        except phr.Unavailable:
            return problem("phr_unavailable", 503)

    return wrapper


@dataclass(frozen=True)
class Person:
    id: str  # the Patient id at the PHR server
    relationship: str  # self | child
    birth_date: date | None
    sex: str | None

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


def people(client: phr.PhrClient, subject: str) -> list[Person]:
    """The person's Patients (self first, then children, youngest last), each labelled by the
    relationship the consent service knows for its (municipality, code)."""
    with database().session() as s:
        known = {
            (pseudonym_system(muni), code): rel
            for muni, code, rel, _ in linkage.patients(s, subject)
        }
    out = []
    for pt in client.patients():
        rel = next(
            (
                known[(i.get("system"), i.get("value"))]
                for i in pt.get("identifier", [])
                if (i.get("system"), i.get("value")) in known
            ),
            None,
        )
        if rel is None:
            continue  # reachable, but no longer linked here (the consent cache moved on)
        try:
            birth = date.fromisoformat(str(pt.get("birthDate", ""))[:10])
        except ValueError:
            birth = None
        out.append(Person(pt["id"], rel, birth, pt.get("gender")))
    out.sort(key=lambda p: (p.relationship != "self", p.birth_date or date.min, p.id))
    return out


def find(all_people: list[Person], pid: str, *, child: bool = False) -> Person:
    for p in all_people:
        if p.id == pid and (not child or p.relationship == "child"):
            return p
    raise phr.NotReachable("not one of this person's Patients")
