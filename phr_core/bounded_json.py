"""JSON from the network, parsed with a nesting limit checked before any object is built.

The standard library's parser recurses once per level: 100,000 `[` answer a RecursionError (a
500) instead of a client error, and deep documents that do parse then break every recursive
walk after them (validation, FHIR models). `loads` counts the depth first, with regular
expressions and byte replacement (C speed, no Python loop per character), and refuses a
document nested deeper than `MAX_DEPTH` with `TooDeep`, a ValueError, so every caller that
already answers "not JSON" for a ValueError answers this one the same way. What parses is
exactly what `json.loads` gives.

`BoundedJSONProvider` makes Flask's `request.get_json()` use it (phr_core.webapp installs it
in every service)."""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider

# FHIR resources in a transaction Bundle nest about a dozen levels (Bundle, entry, resource,
# component, code, coding, extension, …); OAuth and consent documents fewer.
MAX_DEPTH = 64

_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)


class TooDeep(ValueError):
    """The document nests arrays and objects deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON document nests deeper than {limit} levels")
        self.limit = limit


def depth_exceeds(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when `data` nests arrays and objects more than `limit` deep.

    Escaped backslashes and quotes go first, then everything but quotes and brackets; the
    pieces between quotes are string contents and are dropped. Of the brackets left, each
    pass removes the innermost pairs (one level: a pair that becomes innermost waits behind a
    marker for the next pass), so a document of depth d is empty after d passes. Malformed
    input (unbalanced, an unterminated string) counts every opening bracket left as a level:
    the parser would recurse that deep before finding the fault."""
    kept = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    brackets = b"".join(kept.split(b'"')[0::2])
    for level in range(limit + 1):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"x").replace(b"{}", b"x").translate(None, b"x")
        if len(shorter) == len(brackets):  # no pair left: unbalanced
            return level + brackets.count(b"[") + brackets.count(b"{") > limit
        brackets = shorter
    return True


def loads(data: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing documents nested deeper than `limit` with TooDeep."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if depth_exceeds(raw, limit):
        raise TooDeep(limit)
    return json.loads(data)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with the nesting limit on everything it parses."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
        if depth_exceeds(raw):
            raise TooDeep(MAX_DEPTH)
        return super().loads(s, **kwargs)
