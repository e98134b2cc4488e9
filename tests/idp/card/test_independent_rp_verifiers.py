"""An independent OpenID Connect client completes a code flow with each card verifier selected
(issue 15): panva's openid-client (tests/idp/test_independent_rp.py, `only="one_flow"`) against
the IdP served on loopback, the person signing in with a My Number card the way the verifier
takes it:

- `virtual`: the phone app link's development stand-in signs with the virtual card;
- `jpki`: `phr card sign CODE --reader` through a real pcscd and the virtual JPKI chip, checked
  against the configured roots (skips with the reason without the virtual reader stack, outside
  CI);
- `app`: the authentication app's stand-in (idp.authapp_sim) reads the virtual card.

One flow each: the library validates the ID token and userinfo; here, that the sign-in was the
card's (acr) and the person's pairwise sub is what userinfo says.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from idp.authapp_sim.app import create_app as create_sim_app
from idp.card.vcard import VirtualCard
from idp.card.virtual_reader.stack import PcscStack
from phr_core import outbound
from phr_core.config import Settings
from tests.idp.card.conftest import AUTH_PIN, SIGN_PIN, AuthorityEnv, start_authority
from tests.idp.card.pcsc import phr, require_stack
from tests.idp.test_independent_rp import (
    Browser,
    LiveIdP,
    openid_client,  # noqa: F401 - the fixture, used by name
    run_rp,
    serving_idp,
)

ACR_CARD = "urn:phr:acr:card"


def _follow(http: requests.Session, resp: requests.Response) -> str:
    assert resp.status_code in (302, 303), (resp.status_code, resp.text[:500])
    return urljoin(resp.url, resp.headers["Location"])


class VirtualCardBrowser(Browser):
    """Signs in on the phone: the app link, answered by the virtual card's stand-in page."""

    def __init__(self, issuer: str, card: VirtualCard) -> None:
        super().__init__(issuer)
        self.card = card

    def sign_in(self, req: str, page: str, person: int) -> requests.Response:
        link = re.search(r'id="card-phone" href="([^"]+)"', page)
        assert link, page[:800]
        url = urljoin(self.issuer + "/", html.unescape(link.group(1)))
        form = {"card": str(self.card.path), "pin": AUTH_PIN, "sign_pin": SIGN_PIN}
        done = self.http.post(url, data=form, allow_redirects=False, timeout=30)
        return self.http.get(_follow(self.http, done), allow_redirects=False, timeout=10)


class ReaderBrowser(Browser):
    """Signs in at a counter PC: the page's short code, `phr card sign --reader` through pcscd."""

    def __init__(self, issuer: str, sign: object) -> None:
        super().__init__(issuer)
        self.sign = sign

    def sign_in(self, req: str, page: str, person: int) -> requests.Response:
        code = re.search(r'class="card-code">.*?<code>([A-Z0-9-]+)</code>', page, re.S)
        assert code, page[:800]
        self.sign(code.group(1))  # type: ignore[operator]  # the test's reader callable
        return self.http.get(
            f"{self.issuer}/login/card?req={req}", allow_redirects=False, timeout=10
        )


class AppBrowser(Browser):
    """Signs in through the authentication app's stand-in: its authorize page, a virtual card
    and PIN in place of the phone (twice the first time: openid, then the 基本4情報)."""

    def __init__(self, issuer: str, sim_url: str, card: VirtualCard) -> None:
        super().__init__(issuer)
        self.sim_url, self.card = sim_url, card

    def sign_in(self, req: str, page: str, person: int) -> requests.Response:
        assert f"/login/app?req={req}" in page
        resp = self.http.get(f"{self.issuer}/login/app?req={req}", allow_redirects=False)
        for _ in range(4):
            location = _follow(self.http, resp)
            if not location.startswith(self.sim_url):
                return resp
            shown = self.http.get(location, timeout=10)
            assert shown.status_code == 200, shown.text[:500]
            fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', shown.text))
            fields = {k: html.unescape(v) for k, v in fields.items()}
            fields.update(card=str(self.card.path), pin=AUTH_PIN, decision="allow")
            scanned = self.http.post(
                self.sim_url + "/authorize", data=fields, allow_redirects=False, timeout=30
            )
            resp = self.http.get(_follow(self.http, scanned), allow_redirects=False, timeout=10)
        raise AssertionError("the app was visited too often")


def _card_flow(node: str, live: LiveIdP, browser: Browser, tmp_path: Path) -> dict:
    run = run_rp(node, live, tmp_path, browser, only="one_flow")
    assert run.pages == {"A-only": ["/login", "/consent"]}
    claims = run.result["claims"]
    assert claims["iss"] == live.url and claims["acr"] == ACR_CARD
    assert claims["nonce"] == run.result["nonce"]
    assert run.result["userinfo"]["sub"] == claims["sub"]
    return claims


@dataclass
class Rig:
    """What each flow needs: the RP's node, a served development authority, its card."""

    node: str
    authority: AuthorityEnv
    card: VirtualCard
    tmp_path: Path

    def flow(self, live: LiveIdP, browser: Browser) -> dict:
        return _card_flow(self.node, live, browser, self.tmp_path)


@pytest.fixture
def rig(
    openid_client: str,  # noqa: F811 - the imported fixture
    environ: dict[str, str],
    migrated: Settings,
    tmp_path: Path,
) -> Iterator[Rig]:
    env = start_authority(environ, tmp_path)
    yield Rig(openid_client, env, env.card(name="hanako"), tmp_path)
    env.server.shutdown()


def test_virtual_card_verifier(rig: Rig) -> None:
    with serving_idp({**rig.authority.settings.environ, "PHR_CARD_VERIFIER": "virtual"}) as live:
        rig.flow(live, VirtualCardBrowser(live.url, rig.card))


# The reader path stores what the virtual one does (run on both databases above); through pcscd
# it takes some 20 s, so once.
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_jpki_reader_verifier_through_pcscd(rig: Rig) -> None:
    require_stack()
    authority, tmp_path = rig.authority, rig.tmp_path

    folder = authority.authority.folder
    roots = tmp_path / "jlis-roots.pem"
    roots.write_bytes((folder / "root.pem").read_bytes() + (folder / "issuing.pem").read_bytes())
    env = {
        **authority.settings.environ,
        "PHR_CARD_VERIFIER": "jpki",
        "PHR_CARD_JPKI_TRUST_ROOTS": str(roots),
    }
    with PcscStack(tmp_path / "pcsc") as stack, serving_idp(env) as live:
        stack.insert(rig.card.path)

        def sign(code: str) -> None:
            args = ["card", "sign", code, "--reader", "--pin-stdin", "--idp", live.url]
            out = phr(stack, dict(live.settings.environ), args, f"{AUTH_PIN}\n{SIGN_PIN}\n")
            assert out.returncode == 0, out.stdout + out.stderr

        rig.flow(live, ReaderBrowser(live.url, sign))


def test_authentication_app_verifier(rig: Rig) -> None:
    sim_server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    sim_url = f"http://127.0.0.1:{sim_server.server_port}"
    app_settings = {"PHR_CARD_APP_ISSUER": sim_url, "PHR_CARD_APP_CLIENT_ID": "RP00000001"}
    env = {**rig.authority.settings.environ, "PHR_CARD_VERIFIER": "app", **app_settings}
    outbound.forget_unreachable()  # an earlier test's unreachable mark on a reused port
    thread = threading.Thread(target=sim_server.serve_forever, daemon=True)
    try:
        with serving_idp(env) as live:
            sim_server.app = create_sim_app(live.settings)
            thread.start()
            claims = rig.flow(live, AppBrowser(live.url, sim_url, rig.card))
            upstream = {g["sub"] for g in sim_server.app.extensions["authapp_sim"].tokens.values()}
    finally:
        if thread.is_alive():
            sim_server.shutdown()
        sim_server.server_close()
    assert upstream and claims["sub"] not in upstream  # downstream: our own pairwise sub only
