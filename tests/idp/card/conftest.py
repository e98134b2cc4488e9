"""Fixtures for card tests: a real development card authority served on loopback (OCSP, CRL,
CA certificates, renewal links), virtual cards it issues, and the IdP's card endpoints on the
test database.

The card endpoints are mounted on a small Flask app of their own (settings + database + the
card blueprint), so these tests do not depend on the rest of the IdP; the IdP registers the same
blueprint in idp/app.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

import idp.card.models  # noqa: F401  (the card tables join the IdP metadata before migrating)
from idp.authority_sim.app import create_app as create_authority_app
from idp.authority_sim.ca import Authority, init_authority
from idp.card.profile import BasicAttributes
from idp.card.vcard import VirtualCard
from phr_core import migrations
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from phr_core.services import get_service

AUTH_PIN = "1234"
SIGN_PIN = "ABC123"
ALICE = BasicAttributes("会津 花子", "1990-04-01", "female", "福島県会津若松市東栄町3-46")
BOB = BasicAttributes("鶴ヶ城 太郎", "1985-11-03", "male", "福島県会津若松市追手町1-1")


@dataclass
class AuthorityEnv:
    settings: Settings
    authority: Authority
    url: str
    server: BaseWSGIServer
    tmp: Path

    def card(self, attrs: BasicAttributes = ALICE, name: str = "card", **kw: object) -> VirtualCard:
        issued = self.authority.issue_card(attrs, **kw)  # type: ignore[arg-type]
        return VirtualCard.create(
            self.tmp / f"{name}.json",
            (issued.auth_cert, issued.auth_key),
            (issued.sign_cert, issued.sign_key),
            AUTH_PIN,
            SIGN_PIN,
        )

    def renew(self, card: VirtualCard) -> VirtualCard:
        from idp.card.profile import SIGN
        from idp.card.verify import read_attributes

        attrs = read_attributes(card.certificate(SIGN))
        assert attrs is not None
        issued = self.authority.renew(card.certificate("auth"), card.certificate(SIGN), attrs)
        card.load_keys(
            (issued.auth_cert, issued.auth_key),
            (issued.sign_cert, issued.sign_key),
            AUTH_PIN,
            SIGN_PIN,
        )
        return card


def dead_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _serve(server: BaseWSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def start_authority(environ: dict[str, str], tmp: Path) -> AuthorityEnv:
    """Bind a loopback port first (its URL goes into every certificate), then serve."""
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = load_settings({**environ, "PHR_CARD_AUTHORITY_URL": url})
    authority = init_authority(settings)
    server.app = create_authority_app(settings, authority)
    _serve(server)
    return AuthorityEnv(settings, authority, url, server, tmp)


@pytest.fixture
def authority_env(tmp_path: Path) -> Iterator[AuthorityEnv]:
    """A served development authority, without any database (for verifier and card tests)."""
    env = start_authority({"PHR_VAR_DIR": str(tmp_path / "var")}, tmp_path)
    yield env
    env.server.shutdown()


def make_card_app(settings: Settings) -> Flask:
    from idp.card.views import bp

    app = Flask("idp_card_test")
    app.config["TESTING"] = True
    app.extensions["phr_settings"] = settings
    app.extensions["phr_db"] = Database(settings.database_urls["idp"])
    app.register_blueprint(bp)
    return app


@dataclass
class CardIdp:
    env: AuthorityEnv
    app: Flask

    @property
    def settings(self) -> Settings:
        return self.env.settings

    @property
    def db(self) -> Database:
        return self.app.extensions["phr_db"]


@pytest.fixture
def card_idp(environ: dict[str, str], tmp_path: Path) -> Iterator[CardIdp]:
    """The authority served on loopback, plus the card endpoints on a migrated IdP database
    (SQLite and, when configured, PostgreSQL)."""
    env = start_authority(environ, tmp_path)
    # The whole IdP schema: card sign-in also counts failures per person (idp_attempt) and
    # enrollment writes the staff lookup index (idp_person_lookup).
    migrations.upgrade(get_service("idp"), env.settings.database_urls["idp"], "head")
    app = make_card_app(env.settings)
    yield CardIdp(env, app)
    app.extensions["phr_db"].dispose()
    env.server.shutdown()
