"""Signing in on the phone you hold (issue 15, part 3): on a 360 px screen the card panel offers
the app link first and folds the QR code away; on a desktop the QR code is the way; the link's
development stand-in signs the session with a virtual card and returns to the page; an expired
code is renewed in place, by the page's script, for the browser that held it only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import update

from idp.card.models import CardSession
from idp.card.phone import safe_return
from idp.card.sessions import _now
from idp.card.vcard import VirtualCard
from phr_core.config import Settings
from tests.browser import browser_page
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, CardIdp, dead_url, start_authority
from tests.idp.card.test_card_browser import add_login_pages
from tests.idp.card.test_cli_sign import run, serve_on_issuer_port
from tests.idp.conftest import code_request, pkce_pair
from tests.idp.test_independent_rp import serving_idp

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


@contextmanager
def login_page(idp: CardIdp, viewport: dict[str, int]) -> Iterator[tuple[Any, str]]:
    """Chromium at `viewport` on the stand-in login page (add_login_pages); the page and the
    IdP's base URL."""
    add_login_pages(idp)
    base = idp.settings.issuer
    with serve_on_issuer_port(idp.app, idp.settings.ports["idp"]), browser_page() as raw:
        page: Any = raw
        page.set_viewport_size(viewport)
        page.goto(f"{base}/login")
        yield page, base


def _expire(idp: CardIdp, session_id: str) -> None:
    with idp.db.session() as s:
        s.execute(
            update(CardSession)
            .where(CardSession.id == session_id)
            .values(expires_at=_now() - timedelta(seconds=1))
        )


@pytest.mark.browser
def test_on_a_phone_the_app_link_comes_first_and_returns_signed_in(
    card_idp: CardIdp, tmp_path: Path
) -> None:
    card_idp.env.card(name="hanako")
    with login_page(card_idp, PHONE) as (page, base):
        link = page.locator("#card-phone")
        link.wait_for()
        summary = page.locator(".card-qr-box summary")
        assert link.is_visible() and summary.is_visible()
        assert page.locator(".card-qr img").is_visible() is False
        assert link.bounding_box()["y"] < summary.bounding_box()["y"]
        assert link.bounding_box()["width"] >= 300  # the primary button spans the phone's width
        href = urlsplit(link.get_attribute("href"))
        assert parse_qs(href.query)["return"] == ["/done"]
        link.click()
        page.wait_for_url(f"{base}/card/phone/**")
        page.fill("#card", str(tmp_path / "hanako.json"))
        page.fill("#pin", AUTH_PIN)
        page.fill("#sign_pin", SIGN_PIN)  # first use: enrolls
        page.click("#standin-read")
        page.wait_for_url(f"{base}/done", timeout=15_000)
        text = page.locator("#who").inner_text()
        # Folded, the QR code is still there for a second device.
        page.goto(f"{base}/login")
        page.click(".card-qr-box summary")
        page.locator(".card-qr img").wait_for(state="visible")
    assert text == "signed in acr=urn:phr:acr:card amr=sc pin hwk"


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)  # layout only
def test_on_a_desktop_the_qr_code_is_the_way(card_idp: CardIdp) -> None:
    with login_page(card_idp, DESKTOP) as (page, _base):
        qr = page.locator(".card-qr img")
        qr.wait_for(state="visible")
        assert page.locator("#card-phone").is_visible() is False
        assert page.locator(".card-renew").is_visible() is False


@pytest.mark.browser
# The script's part; renewal's database side runs on both in the next test.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_an_expired_code_is_renewed_in_place(card_idp: CardIdp, tmp_path: Path) -> None:
    card_idp.env.card(name="hanako")
    with login_page(card_idp, PHONE) as (page, base):
        panel = page.locator("#card-signin")
        old_session = panel.get_attribute("data-card-session")
        old_code = page.locator(".card-code code").inner_text()
        page.evaluate("window.samePage = true")
        _expire(card_idp, old_session)
        renew = page.locator(".card-renew")
        renew.wait_for(state="visible", timeout=15_000)
        expired = page.locator(".card-message").inner_text()
        renew.click()
        renew.wait_for(state="hidden", timeout=15_000)
        code = page.locator(".card-code code").inner_text()
        assert page.evaluate("window.samePage") is True
        assert code != old_code
        assert panel.get_attribute("data-card-session") != old_session
        assert old_session not in (page.locator("#card-phone").get_attribute("href") or "")
        assert "/card/sessions/" in (page.locator(".card-qr img").get_attribute("src") or "")
        # The new code signs this browser in: its own session now holds the new one.
        out = run(
            card_idp,
            ["sign", code, "--card", str(tmp_path / "hanako.json"), "--pin-stdin"],
            f"{AUTH_PIN}\n{SIGN_PIN}\n",
        )
        assert out.exit_code == 0, out.output
        page.wait_for_url(f"{base}/done", timeout=15_000)
    assert expired.startswith("ログイン用のコードの有効期限（5分）が切れました。")


def test_renewing_needs_the_browsers_own_session(card_idp: CardIdp) -> None:
    add_login_pages(card_idp)
    client = card_idp.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'class="card-reload" href="/login"' in page  # without script: reloading renews
    mine = page.split('data-card-session="', 1)[1].split('"', 1)[0]
    stranger = card_idp.app.test_client()  # another browser, knowing the id
    refused = stranger.post("/card/renew", json={"session": mine, "return": "/done"})
    assert refused.status_code == 404
    off_site = client.post("/card/renew", json={"session": mine, "return": "//evil.example/"})
    assert off_site.status_code == 404
    fresh = client.post("/card/renew", json={"session": mine, "return": "/done"})
    assert fresh.status_code == 200
    body = fresh.get_json()
    assert body["session"] != mine
    assert body["phone_url"] == f"/card/phone/{body['session']}?return=/done"
    assert body["message"] == "新しいコードです。カード読み取りアプリで読み取ってください。"
    # The old id no longer renews: this browser now holds the new one.
    again = client.post("/card/renew", json={"session": mine, "return": "/done"})
    assert again.status_code == 404


def test_the_stand_in_says_what_went_wrong_and_spends_a_try(
    card_idp: CardIdp, tmp_path: Path
) -> None:
    card_idp.env.card(name="hanako")
    add_login_pages(card_idp)
    client = card_idp.app.test_client()
    page = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    link = page.split('id="card-phone" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    form = {"card": str(tmp_path / "hanako.json"), "pin": "9999", "return": "/done"}
    wrong = client.post(link, data=form, headers={"Accept-Language": "en"})
    assert wrong.status_code == 400
    assert "Wrong PIN. (2 tries left)" in wrong.get_data(as_text=True)
    assert VirtualCard.load(tmp_path / "hanako.json").tries_left("auth") == 2
    missing = client.post(link, data={**form, "card": str(tmp_path / "none.json")})
    assert "仮想カードのファイルを読み取れません。" in missing.get_data(as_text=True)
    assert (
        client.get(link.replace("return=/done", "return=https://evil.example/")).status_code == 400
    )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/login/card?req=abc", "/login/card?req=abc"),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("", None),
        (None, None),
    ],
)
def test_the_return_path_stays_on_this_site(given: object, kept: str | None) -> None:
    assert safe_return(given) == kept


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)  # layout only
@pytest.mark.parametrize("verifier", ["virtual", "app"])
def test_the_idp_sign_in_page_on_a_phone(
    environ: dict[str, str], migrated: Settings, tmp_path: Path, verifier: str
) -> None:
    """The IdP's own sign-in page at 360 px: the phone's way in comes first (the app link with
    the virtual card; the authentication app's button when it is the verifier, with no app link
    of ours), and the QR code for a second device is folded away below it."""
    authority = start_authority(environ, tmp_path)
    env = {**authority.settings.environ, "PHR_CARD_VERIFIER": verifier}
    if verifier == "app":
        env.update(PHR_CARD_APP_ISSUER=dead_url(), PHR_CARD_APP_CLIENT_ID="RP00000001")
    try:
        with serving_idp(env) as live, browser_page() as raw:
            page: Any = raw
            page.set_viewport_size(PHONE)
            client = live.clients["A"]
            query = code_request(
                {"client_id": client["client_id"], "redirect_uris": [client["redirect_uri"]]},
                pkce_pair()[1],
            )
            page.goto(f"{live.url}/authorize?{urlencode(query)}")
            page.wait_for_url(f"{live.url}/login?req=*")
            first = page.locator("#authapp-start" if verifier == "app" else "#card-phone")
            summary = page.locator(".card-qr-box summary")
            summary.wait_for()
            assert first.is_visible()
            assert first.bounding_box()["y"] < summary.bounding_box()["y"]
            assert page.locator(".card-qr img").is_visible() is False
            assert page.locator("#card-phone").count() == (0 if verifier == "app" else 1)
    finally:
        authority.server.shutdown()


# Values the portal's rule refuses and the IdP's used to let through (or crash on): NUL,
# other control characters, DEL, spaces, non-ASCII, a lone surrogate (JSON can carry one).
HOSTILE_RETURNS = [
    "/done\x00",
    "/done\x01x",
    "/done\x7f",
    "/do ne",
    "/dön",
    "/\u202edone",
    "/\ud800",
]


@pytest.mark.parametrize("value", HOSTILE_RETURNS)
def test_hostile_return_paths_are_refused(value: str) -> None:
    assert safe_return(value) is None


def test_hostile_return_paths_answer_a_readable_refusal(card_idp: CardIdp) -> None:
    """Through the endpoints, each hostile `return` answers 400 (the stand-in page) or the
    renewal's 404 refusal in its JSON format: never 500, never a redirect off the page."""
    card_idp.env.card(name="hanako")
    add_login_pages(card_idp)
    client = card_idp.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    mine = page.split('data-card-session="', 1)[1].split('"', 1)[0]
    link = f"/card/phone/{mine}"
    for value in HOSTILE_RETURNS:
        if value != "/\ud800":  # a lone surrogate only travels in JSON
            assert client.get(link, query_string={"return": value}).status_code == 400, value
            posted = client.post(link, data={"return": value, "card": "x", "pin": "1"})
            assert posted.status_code == 400, value
        renewed = client.post("/card/renew", json={"session": mine, "return": value})
        assert renewed.status_code == 404 and renewed.get_json()["error"], value
    assert client.post("/card/renew", json={"session": mine, "return": "/done"}).status_code == 200
