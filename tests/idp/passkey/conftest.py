"""Fixtures for the phone path: the real IdP app (every IdP migration) with its issuer on
`localhost` (browsers refuse IP addresses as WebAuthn rp ids), a served development card
authority so people enroll with a real virtual card first, counter-staff accounts, and
helpers that walk the staff pages and the passkey endpoints with Flask test clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.app import create_app, prepare
from idp.card.profile import BasicAttributes
from idp.card.vcard import VirtualCard
from idp.clients import upsert_static
from idp.passkey import staff
from phr_core import migrations
from phr_core.services import get_service
from tests.idp.card.conftest import ALICE, AuthorityEnv, CardIdp, start_authority
from tests.idp.card.test_sessions import sign_in as card_sign_in
from tests.idp.passkey.authenticator import SoftAuthenticator

STAFF_LOGIN = "counter-01"
STAFF_PASSWORD = "correct horse battery"
REDIRECT = "https://rp.example.jp/cb"


@dataclass
class PasskeyIdp:
    env: AuthorityEnv
    app: Flask
    cards: dict[str, VirtualCard] = field(default_factory=dict)

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.app.extensions["phr_db"]

    @property
    def issuer(self) -> str:
        return self.env.settings.issuer

    def enroll_with_card(self, attrs: BasicAttributes = ALICE, name: str = "card") -> str:
        """The person signs in once with their card (enrollment); returns the internal id."""
        card = self.cards[name] = self.env.card(attrs, name=name)
        result = card_sign_in(CardIdp(self.env, self.app), self.app.test_client(), card)
        return result.person_id

    def add_staff(self, login: str = STAFF_LOGIN, password: str = STAFF_PASSWORD) -> int:
        with self.db.session() as s:
            return staff.add_staff(s, login, password).id

    def register_client(self, client_id: str = "rp-1", **meta: object) -> dict:
        full = {
            "client_id": client_id,
            "client_name": f"Test RP {client_id}",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid",
            **meta,
        }
        secret = "rp-secret-" + "x" * 30
        with self.db.session() as s:
            upsert_static(s, dict(full), secret)
        return {**full, "client_secret": secret}

    def authenticator(self, **kw: object) -> SoftAuthenticator:
        return SoftAuthenticator(self.issuer, **kw)  # type: ignore[arg-type]


def make_passkey_idp(
    environ: dict[str, str], tmp_path: Path, host: str = "localhost"
) -> PasskeyIdp:
    environ = {
        **environ,
        "PHR_ISSUER": f"http://{host}:{environ['PHR_IDP_PORT']}",
        "PHR_IDP_GRANT_STORE": "local",
    }
    env = start_authority(environ, tmp_path)
    migrations.upgrade(get_service("idp"), env.settings.database_urls["idp"])
    prepare(env.settings)
    app = create_app(env.settings)
    app.config["TESTING"] = True
    return PasskeyIdp(env, app)


@pytest.fixture
def pk(environ: dict[str, str], tmp_path: Path) -> Iterator[PasskeyIdp]:
    idp = make_passkey_idp(environ, tmp_path)
    yield idp
    idp.app.extensions["phr_db"].dispose()
    idp.env.server.shutdown()


def form_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def data_csrf(html: str) -> str:
    m = re.search(r'data-csrf="([^"]+)"', html)
    assert m, html[:800]
    return m.group(1)


def staff_sign_in(client: FlaskClient, login: str = STAFF_LOGIN, password: str = STAFF_PASSWORD):  # type: ignore[no-untyped-def]
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"csrf": form_csrf(page.get_data(as_text=True)), "login": login, "password": password},
    )


def issue_code(
    client: FlaskClient,
    attrs: BasicAttributes = ALICE,
    *,
    address: str = "",
    confirmed: bool = True,
):  # type: ignore[no-untyped-def]
    """The counter form, as a signed-in staff member fills it; returns the response."""
    page = client.get("/staff/")
    data = {
        "csrf": form_csrf(page.get_data(as_text=True)),
        "name": attrs.name,
        "birthdate": attrs.birthdate,
        "address": address,
    }
    if confirmed:
        data["confirmed"] = "yes"
    return client.post("/staff/codes", data=data)


def shown_code(html: str) -> str:
    m = re.search(r'<code id="enrollment-code">([A-Z0-9-]+)</code>', html)
    assert m, html[:1500]
    return m.group(1)
