"""Which entity identifiers the platform fetches: the IdP fetches whatever client_id an
unauthenticated request names, so this is its guard against being used as a proxy."""

from __future__ import annotations


def test_entity_ids_are_https_urls_and_never_internal_addresses_in_production() -> None:
    from federation.entity.fetch import acceptable_entity_id

    assert acceptable_entity_id("https://app.example.jp", allow_http_loopback=False)
    assert acceptable_entity_id("http://127.0.0.1:8001", allow_http_loopback=True)
    for bad in (
        "http://127.0.0.1:8001",
        "http://app.example.jp",
        "https://10.0.0.5",
        "https://169.254.169.254",
        "https://[::1]",
        "https://localhost",
        "https://app.example.jp?x=1",
        "https://app.example.jp#f",
        "ftp://app.example.jp",
    ):
        assert not acceptable_entity_id(bad, allow_http_loopback=False), bad
