"""Accessibility as a screen-reader or keyboard user meets it: axe-core (npm, installed by
`.ci/run` with `npm ci` in tests/browser_tools/) runs in headless Chromium on every portal page
and on the IdP's sign-in and consent pages, at 360×740 with Japanese fonts, in one browser
session against the real platform; no serious or critical violation may remain.

Outside CI a missing Chromium or axe-core skips with the reason; in CI it is a failure."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser import browser_page
from tests.conftest import IN_CI
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, PORTAL_PAGES, Platform

pytestmark = pytest.mark.browser
AXE = (
    Path(__file__).resolve().parents[1]
    / "browser_tools"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
BLOCKING = ("serious", "critical")
APP = "demo-vaccination-app"
APP_REDIRECT = "http://127.0.0.1:8010/callback"

environ = live_platform.environ  # the platform on loopback
platform = live_platform.platform

# Run in the page by Playwright (DevTools evaluation: the pages' CSP does not apply to it).
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return {
    passed: result.passes.length,
    violations: result.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
    })),
  };
}"""


def axe_source() -> str:
    if not AXE.exists():
        reason = "axe-core not installed (npm ci in tests/browser_tools); .ci/run installs it"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE.read_text(encoding="utf-8")


def violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result: dict[str, Any] = page.evaluate(RUN_AXE)
    assert result["passed"] > 10, page.url  # axe really checked this page
    for v in result["violations"]:
        if v["impact"] not in BLOCKING:
            print(f"axe {v['impact']}: {v['id']} on {page.url} at {v['nodes']}")
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_no_serious_accessibility_violations(platform: Platform) -> None:
    p = platform
    source = axe_source()
    seen: dict[str, list[dict[str, Any]]] = {}
    with browser_page("ja-JP") as page:
        page.set_viewport_size({"width": 360, "height": 740})
        page.goto(p.portal + "/")
        seen["portal / (signed out)"] = violations(page, source)
        page.click("#sign-in")
        page.wait_for_url(p.idp + "/login*")
        seen["idp /login"] = violations(page, source)
        page.fill("#person", PARENT)
        page.click("#dev-login button[type=submit]")
        page.wait_for_url(p.portal + "/*")

        for width, height in ((360, 740), (1280, 800)):  # a phone, then a desktop
            page.set_viewport_size({"width": width, "height": height})
            for path in PORTAL_PAGES:
                resp = page.goto(p.portal + path)
                assert resp is not None and resp.status == 200, path
                seen[f"portal {path} at {width} px"] = violations(page, source)
                sideways = page.evaluate("document.documentElement.scrollWidth")
                assert sideways <= width, (path, width, sideways)  # nothing scrolls sideways
                assert page.locator("h1").first.is_visible(), (path, width)
        page.set_viewport_size({"width": 360, "height": 740})

        page.goto(p.portal + "/me/delete")
        page.click("#delete-next")
        page.wait_for_url(p.portal + "/me/delete/review")
        seen["portal /me/delete/review"] = violations(page, source)

        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        query = {"response_type": "code", "client_id": APP, "redirect_uri": APP_REDIRECT,
                 "scope": "openid launch/patient patient/Immunization.rs", "state": "s",
                 "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
        page.goto(p.idp + "/authorize?" + urlencode(query))
        page.wait_for_url(p.idp + "/consent*")
        seen["idp /consent"] = violations(page, source)
        page.goto(p.idp + "/logout")
        seen["idp /logout"] = violations(page, source)

    failing = {where: found for where, found in seen.items() if found}
    assert not failing, "\n".join(
        f"{where}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
        for where, found in failing.items()
        for v in found
    )
