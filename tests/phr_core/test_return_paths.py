"""phr_core.return_paths: the one rule for where a sign-in may return to, shared by the
portal and the IdP (a value either refuses answers the caller's own page, never 500)."""

from __future__ import annotations

import pytest

from idp.card.phone import safe_return as idp_return
from phr_core.return_paths import local_path
from portal.session import safe_return as portal_return

REFUSED = [
    None,
    42,
    "",
    "done",
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "/x\\..\\evil",
    "javascript:alert(1)",
    "http:/done",
    " /done",
    "/\t/evil.example",
    "/\n/evil.example",
    "/done\r",
    "/done\x00",
    "/done\x01",
    "/done\x1f",
    "/done\x7f",
    "/do ne",
    "/dön",
    "/ｄone",
    "/\u202edone",
    "/\ud800",
    "/" + "a" * 2000,
]


@pytest.mark.parametrize("value", REFUSED)
@pytest.mark.parametrize("rule", [local_path, idp_return, portal_return])
def test_anything_but_a_plain_local_path_is_refused(rule, value: object) -> None:  # type: ignore[no-untyped-def]
    assert rule(value) is None


@pytest.mark.parametrize("value", ["/", "/done", "/login/card?req=abc", "/me/apps#x", "/a%00b"])
def test_plain_local_paths_are_kept(value: str) -> None:
    assert local_path(value) == value == idp_return(value) == portal_return(value)


def test_each_caller_keeps_its_own_limits() -> None:
    assert idp_return("/" + "a" * 600) is None and portal_return("/" + "a" * 600) is not None
    assert portal_return("/auth/logout") is None and idp_return("/auth/logout") == "/auth/logout"
