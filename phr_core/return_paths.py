"""Where a page may send the browser back to after a sign-in: a path on the same site only.

One rule for the portal (`portal.session.safe_return`) and the IdP (`idp.card.phone`), so
neither becomes an open redirect, nor answers 500 to a value it cannot encode: anything but
a plain ASCII path starting with one "/" is refused (a caller falls back to its own page)."""

from __future__ import annotations

import urllib.parse


def local_path(value: object, max_length: int = 2000) -> str | None:
    """`value` when it is a path on this site, else None. Refused: a non-string or over-long
    value, an absolute URL, `//host`, a backslash (browsers read `/\\host` as `//host`), a
    scheme, spaces and control characters (browsers drop tabs and newlines, NUL breaks
    databases and headers) and anything not ASCII (a lone surrogate cannot even be encoded)."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > max_length:
        return None
    if value.startswith("//") or not value.isascii() or "\\" in value:
        return None
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value
