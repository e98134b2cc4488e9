"""SMART on FHIR scope algebra: parsing `patient/Observation.rs`, granular `?category=…` and
v1 `.read`/`.write`, and narrowing a token's scopes to what its consent grant covers. Pure
functions of text, cached: the same few scope strings arrive with every request."""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass

_SCOPE_RE = re.compile(
    r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$"
)
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
READ_ONLY = frozenset("rs")


@dataclass(frozen=True)
class Scope:
    context: str  # patient | user | system
    type: str  # a resource type or *
    perms: frozenset[str]  # of c r u d s
    filters: tuple[tuple[str, str], ...] = ()  # granular: (search parameter, value)

    def intersect(self, other: Scope) -> Scope | None:
        """What both scopes allow (a token's scope narrowed by a grant's), or None."""
        if self.context != other.context:
            return None
        if self.type == "*":
            rtype = other.type
        elif other.type in ("*", self.type):
            rtype = self.type
        else:
            return None
        perms = self.perms & other.perms
        if not perms:
            return None
        filters = tuple(dict.fromkeys(self.filters + other.filters))
        return Scope(self.context, rtype, perms, filters)


@functools.lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope | None:
    """A SMART resource scope, or None for other scopes (openid, launch/patient, …)."""
    m = _SCOPE_RE.match(text)
    if not m or not m.group(3):
        return None
    perms = frozenset(V1.get(m.group(3), m.group(3)))
    filters = tuple(urllib.parse.parse_qsl(m.group(4) or "", keep_blank_values=False))
    return Scope(m.group(1), m.group(2), perms, filters)


@functools.lru_cache(maxsize=4096)
def parsed(texts: frozenset[str]) -> tuple[Scope, ...]:
    """The SMART resource scopes among `texts`, in a stable order."""
    return tuple(s for s in map(parse_scope, sorted(texts)) if s is not None)


@functools.lru_cache(maxsize=4096)
def narrowed(requested: frozenset[str], granted: tuple[str, ...]) -> tuple[Scope, ...]:
    """A token's scopes narrowed to what its grant covers (the same few pairs every request)."""
    return tuple(
        both
        for s in parsed(requested)
        if s.context != "system"
        for g in parsed(frozenset(granted))
        if (both := s.intersect(g)) is not None
    )


def read_only(scopes: tuple[Scope, ...]) -> list[Scope]:
    """The `user`/`patient` scopes cut down to read and search (the first-party portal's)."""
    return [
        Scope(s.context, s.type, s.perms & READ_ONLY, s.filters)
        for s in scopes
        if s.context != "system" and s.perms & READ_ONLY
    ]
