"""The login page's card panel in real headless Chromium: it shows the QR code and the short
code, and moves on by itself once `phr card sign` (run meanwhile, as the phone would) has been
verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import redirect, render_template_string, session, url_for

from idp.card.sessions import create_card_session, take_verified
from idp.card.views import panel_context
from tests.browser import browser_page
from tests.idp.card.conftest import CardIdp
from tests.idp.card.test_cli_sign import run, serve_on_issuer_port

PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>login</title></head>
<body>{% include "card/panel.html" %}</body></html>"""


def add_login_pages(idp: CardIdp) -> None:
    """A stand-in for the IdP's login page: open a card session, keep its id in the browser's
    own session, show the panel; /done takes the verified result once."""
    app = idp.app
    app.secret_key = "test-only-" + "x" * 32

    @app.get("/login")
    def login():  # type: ignore[no-untyped-def]
        with idp.db.session() as s:
            cs = create_card_session(s, "login")
        session["card_session"] = cs.id
        return render_template_string(PAGE, card=panel_context(cs, url_for("done"), "ja"))

    @app.get("/done")
    def done():  # type: ignore[no-untyped-def]
        with idp.db.session() as s:
            result = take_verified(s, session.get("card_session", ""))
        if result is None:
            return redirect(url_for("login"))
        return f"<p id='who'>signed in acr={result.acr} amr={' '.join(result.amr)}</p>"


@pytest.mark.browser
def test_login_page_moves_on_after_the_card_signs(card_idp: CardIdp, tmp_path: Path) -> None:
    card_idp.env.card(name="hanako")
    add_login_pages(card_idp)
    base = card_idp.settings.issuer
    port = card_idp.settings.ports["idp"]
    with serve_on_issuer_port(card_idp.app, port), browser_page() as page:
        page.goto(f"{base}/login")  # type: ignore[attr-defined]
        qr = page.locator(".card-qr img")  # type: ignore[attr-defined]
        qr.wait_for()
        page.wait_for_function(  # type: ignore[attr-defined]
            "() => { const i = document.querySelector('.card-qr img');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        code = page.locator(".card-code code").inner_text()  # type: ignore[attr-defined]
        out = run(
            card_idp,
            ["sign", code, "--card", str(tmp_path / "hanako.json"), "--pin-stdin"],
            "1234\nABC123\n",
        )
        assert out.exit_code == 0, out.output
        page.wait_for_url(f"{base}/done", timeout=15_000)  # type: ignore[attr-defined]
        text = page.locator("#who").inner_text()  # type: ignore[attr-defined]
    assert text == "signed in acr=urn:phr:acr:card amr=sc pin hwk"


@pytest.mark.browser
def test_login_page_shows_why_a_card_was_refused(card_idp: CardIdp, tmp_path: Path) -> None:
    card = card_idp.env.card(name="lost")
    card_idp.env.authority.revoke(card.certificate("auth"), "key_compromise")
    add_login_pages(card_idp)
    base = card_idp.settings.issuer
    port = card_idp.settings.ports["idp"]
    with serve_on_issuer_port(card_idp.app, port), browser_page() as page:
        page.goto(f"{base}/login")  # type: ignore[attr-defined]
        code = page.locator(".card-code code").inner_text()  # type: ignore[attr-defined]
        out = run(
            card_idp, ["sign", code, "--card", str(tmp_path / "lost.json"), "--pin-stdin"], "1234\n"
        )
        assert out.exit_code == 1
        page.locator("#card-signin.card-failed").wait_for(timeout=15_000)  # type: ignore[attr-defined]
        message = page.locator(".card-message").inner_text()  # type: ignore[attr-defined]
        assert page.url == f"{base}/login"  # type: ignore[attr-defined]
    assert message == "この電子証明書は失効しています。市区町村の窓口にお問い合わせください。"
