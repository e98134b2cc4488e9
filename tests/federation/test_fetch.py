"""Which entity identifiers the platform fetches: the IdP fetches whatever client_id an
unauthenticated request names, so this is its guard against being used as a proxy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from federation import errors, jose, keys
from federation.authority import store
from federation.entity.fetch import UrlFetcher, acceptable_entity_id
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from phr_core import migrations
from phr_core.config import load_settings
from phr_core.services import get_service
from tests.conftest import create_app, free_port, make_environ
from tests.federation.conftest import LeafEntity, new_key, rp_metadata


def test_entity_ids_are_https_urls_and_never_internal_addresses_in_production() -> None:
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


def test_real_http_resolution_with_the_url_fetcher(tmp_path: Path, database_url: str) -> None:
    """The chain resolved over real HTTP: the anchor and an app each served by a WSGI server
    on loopback, fetched with UrlFetcher (404 for a removed app, no redirects followed)."""
    settings = load_settings(make_environ(tmp_path, database_url))
    migrations.upgrade(get_service("federation"), settings.database_urls["federation"])
    anchor = create_app(get_service("federation"), settings)
    port = free_port()
    key = new_key()
    entity_id = f"http://127.0.0.1:{port}"
    leaf = LeafEntity(entity_id, key, rp_metadata(entity_id, key), [settings.urls["federation"]])
    servers = [
        make_server("127.0.0.1", settings.ports["federation"], anchor),
        make_server("127.0.0.1", port, leaf.app()),
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        with anchor.extensions["phr_db"].session() as s:
            store.add(s, entity_id, leaf.jwks)
        anchors = {
            settings.urls["federation"]: jose.public_jwks(keys.entity_key(settings, "federation"))
        }
        resolver = Resolver(UrlFetcher(), anchors)
        chain = resolver.resolve(entity_id)
        assert chain.metadata["openid_relying_party"]["subject_type"] == "pairwise"

        with anchor.extensions["phr_db"].session() as s:
            store.remove(s, entity_id)
        with pytest.raises(FederationError) as info:
            resolver.resolve(entity_id, fresh=True)
        assert info.value.reason == errors.NOT_FOUND

        closed = f"http://127.0.0.1:{free_port()}"
        with pytest.raises(FederationError) as info:
            resolver.resolve(closed)
        assert info.value.reason == errors.UNREACHABLE
    finally:
        for s in servers:
            s.shutdown()
        anchor.extensions["phr_db"].dispose()
