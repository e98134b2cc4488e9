"""A federation in one process: real authority apps (anchor, prefecture) and small real
entities (apps publishing their entity configuration), reached through a fetcher that routes
each URL to the app serving that origin instead of the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask, Response

from federation import jose, keys
from federation.authority import store
from federation.entity import statement
from federation.entity.fetch import Fetched
from federation.entity.trust_chain import Resolver
from phr_core import migrations
from phr_core.config import Settings, load_settings
from phr_core.services import get_service
from tests.conftest import create_app, free_port, make_environ


class WsgiFetcher:
    """Routes http://127.0.0.1:PORT/... to the in-process app registered for that origin."""

    def __init__(self) -> None:
        self.apps: dict[str, Flask] = {}
        self.requests: list[str] = []

    def mount(self, base_url: str, app: Flask) -> None:
        self.apps[base_url.rstrip("/")] = app

    def _client(self, url: str) -> tuple[Any, str]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.apps:
            from federation.errors import UNREACHABLE, FederationError

            raise FederationError(UNREACHABLE, f"nothing serves {origin}")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.apps[origin].test_client(), path

    def get(self, url: str) -> Fetched:
        self.requests.append(url)
        client, path = self._client(url)
        resp = client.get(path)
        return Fetched(resp.status_code, resp.mimetype or "", resp.get_data(as_text=True))

    def post(self, url: str, form: dict[str, str]) -> Fetched:
        self.requests.append(url)
        client, path = self._client(url)
        resp = client.post(path, data=form)
        return Fetched(resp.status_code, resp.mimetype or "", resp.get_data(as_text=True))


@dataclass
class LeafEntity:
    """An app or service in the federation: publishes a self-signed entity configuration."""

    entity_id: str
    key: jose.FederationKey
    metadata: dict[str, Any]
    authority_hints: list[str]
    lifetime_s: int = 3600
    trust_marks: list[dict[str, str]] = field(default_factory=list)
    signing_key: jose.FederationKey | None = None  # sign with another key than the published

    @property
    def jwks(self) -> dict[str, Any]:
        return jose.public_jwks(self.key)

    def configuration(self) -> str:
        import time

        claims_key = self.key
        token = statement.sign_configuration(
            self.entity_id,
            claims_key,
            self.metadata,
            authority_hints=self.authority_hints,
            lifetime_s=self.lifetime_s,
            now=int(time.time()),
            trust_marks=self.trust_marks or None,
        )
        if self.signing_key is not None:
            _, claims = jose.peek(token)
            token = jose.sign(claims, self.signing_key, statement.TYP)
        return token

    def app(self) -> Flask:
        app = Flask(f"leaf-{self.entity_id}")

        @app.get(statement.WELL_KNOWN)
        def configuration() -> Response:
            return Response(self.configuration(), mimetype=statement.MEDIA_TYPE)

        return app


def new_key() -> jose.FederationKey:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    return key


def rp_metadata(entity_id: str, key: jose.FederationKey, **overrides: Any) -> dict[str, Any]:
    """An app's openid_relying_party metadata that this federation's policy accepts."""
    md = {
        "client_name": "Mother-and-child handbook app",
        "redirect_uris": [entity_id + "/callback"],
        "jwks": jose.public_jwks(key),
        "scope": "openid patient/Immunization.rs patient/Observation.rs launch/patient",
        "token_endpoint_auth_method": "private_key_jwt",
        "client_registration_types": ["automatic"],
    }
    md.update(overrides)
    return {"openid_relying_party": md}


@dataclass
class Federation:
    """The anchor (real federation app on the test database) plus whatever tests add."""

    settings: Settings
    fetcher: WsgiFetcher
    anchor: Flask
    tmp_path: Path
    apps: list[Flask] = field(default_factory=list)

    @property
    def anchor_id(self) -> str:
        return self.settings.urls["federation"]

    def anchor_jwks(self) -> dict[str, Any]:
        return jose.public_jwks(keys.entity_key(self.settings, "federation"))

    def resolver(self, **kwargs: Any) -> Resolver:
        return Resolver(self.fetcher, {self.anchor_id: self.anchor_jwks()}, **kwargs)

    def add_subordinate(self, app: Flask, entity_id: str, jwks: dict[str, Any], **kw: Any) -> None:
        with app.extensions["phr_db"].session() as s:
            store.add(s, entity_id, jwks, **kw)

    def remove_subordinate(self, app: Flask, entity_id: str) -> None:
        with app.extensions["phr_db"].session() as s:
            store.remove(s, entity_id)

    def leaf(self, name: str = "app", *, superior: str | None = None, **kw: Any) -> LeafEntity:
        entity_id = f"http://127.0.0.1:{free_port()}"
        key = new_key()
        metadata = kw.pop("metadata", None) or rp_metadata(entity_id, key)
        entity = LeafEntity(entity_id, key, metadata, [superior or self.anchor_id], **kw)
        self.fetcher.mount(entity_id, entity.app())
        return entity

    def authority(
        self, *, hints: list[str], name: str, url: str | None = None
    ) -> tuple[Flask, str]:
        """Another federation authority (an intermediate), on its own SQLite database."""
        url = url or f"http://127.0.0.1:{free_port()}"
        env = make_environ(
            self.tmp_path / name,
            f"sqlite:///{self.tmp_path / (name + '.db')}",
            PHR_FEDERATION_URL=url,
            PHR_FEDERATION_AUTHORITY_HINTS=" ".join(hints),
        )
        s = load_settings(env)
        migrations.upgrade(get_service("federation"), s.database_urls["federation"])
        app = create_app(get_service("federation"), s)
        self.apps.append(app)
        self.fetcher.mount(url, app)
        return app, url

    def authority_jwks(self, app: Flask) -> dict[str, Any]:
        return jose.public_jwks(keys.entity_key(app.extensions["phr_settings"], "federation"))


@pytest.fixture
def federation(tmp_path: Path, database_url: str) -> Iterator[Federation]:
    env = make_environ(tmp_path, database_url)
    settings = load_settings(env)
    migrations.upgrade(get_service("federation"), settings.database_urls["federation"])
    anchor = create_app(get_service("federation"), settings)
    fetcher = WsgiFetcher()
    fetcher.mount(settings.urls["federation"], anchor)
    fed = Federation(settings, fetcher, anchor, tmp_path)
    anchor.extensions["federation_resolver"] = fed.resolver()
    yield fed
    for app in [anchor, *fed.apps]:
        app.extensions["phr_db"].dispose()


def query(url: str, **params: str) -> str:
    return url + "?" + urlencode(params)


Build = Callable[..., LeafEntity]
