"""The newcomer's story (issue 6's "done when"), all in headless Chromium at 360×740 against
the platform as `phr dev run` starts it (every service under gunicorn, the card authority
stand-in beside them):

a mother gets a virtual My Number card, signs in to the portal with it, consents for the demo
city; the city's connector answers her link request from its resident register and loads the
maternal and child health and vaccination exports; she sees her child's growth chart and
vaccination schedule and a notice that records arrived; she grants the demo vaccination app on
the IdP's consent screen, the app reads, its reads appear in her access history; she revokes
it in the portal and the app's next request is refused.

Screenshots of each page go to var/screenshots/newcomer/ (git-ignored)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from idp.demo import DEMO_APP_PORT
from phr_core.demo_data import DEMO_MUNICIPALITY
from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.dev_platform import DevPlatform
from tests.revocation import first_refusal

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # against `phr dev run`

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "connectors" / "samples"
SHOTS = ROOT / "var" / "screenshots" / "newcomer"
PHR = [sys.executable, "-m", "launcher.cli"]
APP = "demo-vaccination-app"
APP_REDIRECT = f"http://127.0.0.1:{DEMO_APP_PORT}/callback"
# The demo city's sample exports: a mother (resident 1000000466) and her child (1000000473,
# born 2024-11-27) with checkups and vaccinations.
MOTHER = "1000000466"
AUTH_PIN, SIGN_PIN = "1234", "ABC123"
WAIT_MS = 20_000


def _mother() -> dict[str, str]:
    with (SAMPLES / "register.csv").open(encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["住民番号"] == MOTHER)
    return {"name": row["氏名"], "birthdate": row["生年月日"], "address": row["住所"]}


def _phr(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [*PHR, *args],
        env={**os.environ, **env, "LANG": "C.UTF-8"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


CITY = f"#source-{DEMO_MUNICIPALITY.code}"  # its card on "My data sources"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_a_newcomer_in_the_browser(dev_platform: DevPlatform, tmp_path: Path) -> None:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    # each service's own SQLite file, as `make run` has it, and the connector's inbox
    env = dev_platform.env
    SHOTS.mkdir(parents=True, exist_ok=True)
    portal = f"http://127.0.0.1:{env['PHR_CONSENT_PORT']}"
    idp = f"http://127.0.0.1:{env['PHR_IDP_PORT']}"
    fhir = f"http://127.0.0.1:{env['PHR_FHIR_PORT']}"
    mother = _mother()
    card = tmp_path / "card.json"
    _phr(env, "card", "issue", "--name", mother["name"], "--birthdate",
         mother["birthdate"], "--sex", "female", "--address", mother["address"],
         "--out", str(card), "--auth-pin", AUTH_PIN, "--sign-pin", SIGN_PIN)  # fmt: skip

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="ja-JP", viewport={"width": 360, "height": 740})
            page = context.new_page()

            def shot(name: str) -> None:
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, f"{name}: {width} px wide"

            # 1. Sign in to the portal with the card (enrolment on first use).
            page.goto(portal + "/")
            shot("01-portal")
            page.click("#sign-in-main")
            page.wait_for_selector(".card-code code", timeout=WAIT_MS)
            shot("02-idp-card-sign-in")
            code = page.locator(".card-code code").inner_text()
            _phr(env, "card", "sign", code, "--card", str(card), "--pin-stdin",
                 stdin=f"{AUTH_PIN}\n{SIGN_PIN}\n")  # fmt: skip
            page.wait_for_url(portal + "/**", timeout=WAIT_MS)
            page.wait_for_selector("#signed-in", timeout=WAIT_MS)
            shot("03-signed-in")

            # 2. Consent for the demo city (through the IdP once more: single sign-on).
            page.click("#sources-link")
            page.wait_for_selector("#sources")
            # (the first of the two demo cities: the sample exports are its)
            form = page.locator(f"{CITY} .consent-form")
            for kind in ("mch", "vaccination", "checkup"):  # nothing is pre-ticked
                form.locator(f"input[name=category][value={kind}]").check()
            form.locator("input[name=children]").check()
            form.locator("button.consent").click()
            page.wait_for_selector("#consented-notice", timeout=WAIT_MS)
            assert "確認しています" in page.locator(f"{CITY} .link-state").inner_text()
            shot("04-consented")

            # 3. The city: answer the link request from the register, then load.
            out = _phr(env, "connector", "link", "--register", str(SAMPLES / "register.csv"),
                       "--mch", str(SAMPLES / "mch.csv"))  # fmt: skip
            assert "1 matched (1 children named)" in out, out
            out = _phr(env, "connector", "run", str(SAMPLES / "mch.csv"),
                       str(SAMPLES / "vaccination.csv"), "--register",
                       str(SAMPLES / "register.csv"))  # fmt: skip
            page.reload()
            assert "確認済み" in page.locator(f"{CITY} .link-state").inner_text()
            deadline = time.monotonic() + 15  # the PHR server's notice is posted async
            while "まだ届いていません" in page.locator(f"{CITY} .last-update").inner_text():
                assert time.monotonic() < deadline, "the last update never moved"
                time.sleep(0.5)
                page.reload()
            shot("05-sources-loaded")
            page.goto(portal + "/me/notices")
            assert "お子さんの新しい記録が届きました" in page.locator("#notices").inner_text()
            shot("06-notices")

            # 4. The child's growth chart and vaccination schedule.
            page.goto(portal + "/")
            page.click("#records-link")
            page.wait_for_load_state()
            shot("07-children")
            child = page.locator("a[href*='/growth']").first.get_attribute("href")
            assert child is not None
            pid = child.split("/")[3]
            page.goto(portal + f"/me/children/{pid}/growth")
            assert page.locator("svg").count() >= 1
            shot("08-growth")
            page.goto(portal + f"/me/children/{pid}/vaccinations")
            shot("09-schedule")
            assert "済" in page.content() or "done" in page.content()

            # 5. Grant the demo vaccination app on the IdP's consent screen.
            verifier, challenge = _pkce()
            codes: list[str] = []

            def app_callback(route):  # type: ignore[no-untyped-def]
                codes.extend(parse_qs(urlsplit(route.request.url).query).get("code", []))
                route.fulfill(status=200, body="<p id='app'>demo app</p>",
                              content_type="text/html")  # fmt: skip

            page.route(APP_REDIRECT + "**", app_callback)
            params = {
                "response_type": "code", "client_id": APP, "redirect_uri": APP_REDIRECT,
                "scope": "openid launch/patient patient/Immunization.rs patient/Patient.rs",
                "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256",
            }  # fmt: skip
            page.goto(idp + "/authorize?" + urlencode(params))
            page.wait_for_selector("#allow", timeout=WAIT_MS)
            radios = page.locator("input[type=radio]")
            if radios.count():
                radios.last.check()  # whose record the app opens: the child
            shot("10-idp-consent")
            page.click("#allow")
            page.wait_for_selector("#app", timeout=WAIT_MS)
            assert codes, "the app got no code"
            tokens = requests.post(
                idp + "/token",
                data={"grant_type": "authorization_code", "client_id": APP,
                      "code": codes[0], "redirect_uri": APP_REDIRECT,
                      "code_verifier": verifier},
                timeout=10,
            ).json()  # fmt: skip
            headers = {"Authorization": "Bearer " + tokens["access_token"]}
            reads = requests.get(fhir + "/Immunization", headers=headers, timeout=10)
            assert reads.status_code == 200, reads.text
            assert reads.json().get("entry"), "the app found no vaccinations"

            # 6. Its reads appear in the access history.
            page.goto(portal + "/me/history")
            history = page.locator("main").inner_text()
            assert "予防接種スケジュール" in history, history[:500]
            shot("11-history")

            # 7. Revoke it in the portal; its next request is refused.
            page.goto(portal + "/me/apps")
            shot("12-apps")
            page.locator(".app-grant button.revoke").first.click()
            page.wait_for_selector("#revoked-notice")
            shot("13-revoked")
            refused = first_refusal(
                lambda: requests.get(fhir + "/Immunization", headers=headers, timeout=10)
            )
            assert refused.status_code == 403
            assert refused.json()["resourceType"] == "OperationOutcome"
        finally:
            browser.close()
    assert json.loads((card).read_text())  # the card file is intact
