"""Issue 20: "never tokens, PINs or personal data" in the logs of a platform run. The IdP,
consent service and portal, and PHR server run on loopback (tests/portal/live_platform.py)
and a realistic flow goes through them: the parent signs in to the portal and reads her and
her child's records; an app signs in with PKCE, reads the child's records, refreshes its
token. Every line the services log (in the production JSON format) is then searched for each
demo person's birth date, the city's pseudonymous codes, the stored Patient ids, the IdP's
person ids and pairwise subjects, the authorization code, the PKCE verifier, and the access,
refresh and ID tokens. The same run shows the request id crossing services, and the
consent-cache and pool metrics moving.

(The card PIN and card attributes: tests/idp/card/test_card_metrics.py. The card sign-in
needs the card authority; this flow uses the development sign-in.)
"""

from __future__ import annotations

import json
import logging
from datetime import date

import requests
from prometheus_client import REGISTRY

from idp.endpoints.interaction import demo_person_id
from idp.subjects import PHR_SECTOR, PairwiseSubjects
from phr_core import request_ids
from phr_core.db import Database
from phr_core.demo_data import DEMO_FAMILY
from phr_server.demo_family import CHILD_ID, PARENT_ID
from tests.launcher.test_pairwise_ids import _second_parent, _sign_in
from tests.phr_core.test_logs import Lines
from tests.portal import live_platform
from tests.portal.live_platform import PARENT, TIMEOUT, Platform
from tests.portal.live_platform import sign_in as portal_sign_in

# The test's own HTTP client and werkzeug's development server (which stands in for gunicorn
# here) log request lines of their own; no service runs them in production.
HARNESS = ("urllib3", "werkzeug")


environ = live_platform.environ  # the platform on loopback, for each test
platform = live_platform.platform


def _cache_lookups(cache: str) -> float:
    return sum(
        REGISTRY.get_sample_value("phr_consent_cache_lookups_total", {"cache": cache, "result": r})
        or 0.0
        for r in ("hit", "miss")
    )


def test_a_platform_runs_logs_carry_no_token_or_personal_data(platform: Platform) -> None:
    p = platform
    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    level = root.level
    root.setLevel(logging.DEBUG)  # the strictest: everything any service would say
    lookups = {c: _cache_lookups(c) for c in ("consent", "fhir")}
    try:
        father = _second_parent(p.settings)
        browser = requests.Session()
        portal_sign_in(browser, p)
        for path in ("/", f"/me/records/{PARENT_ID}", f"/me/records/{CHILD_ID}", "/me/history"):
            assert browser.get(p.portal + path, timeout=TIMEOUT).status_code == 200
        # An app, with its own request id: the PHR server and the consent decision log it.
        tokens = _sign_in(p, "growth-app", PARENT)
        rid = "app-read-0123456789"
        bearer = {"Authorization": "Bearer " + tokens["access_token"], request_ids.HEADER: rid}
        for path in (f"/Patient/{tokens['patient']}", f"/Immunization?patient={tokens['patient']}"):
            resp = requests.get(p.fhir + path, headers=bearer, timeout=TIMEOUT)
            assert resp.status_code == 200, resp.text[:300]
        refreshed = requests.post(
            p.idp + "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                  "client_id": "growth-app"},
            timeout=TIMEOUT,
        )  # fmt: skip
        assert refreshed.status_code == 200, refreshed.text
    finally:
        root.removeHandler(lines)
        root.setLevel(level)

    idp_db = Database(p.settings.database_urls["idp"])
    with idp_db.session() as s:
        mother = PairwiseSubjects(p.settings.secret("PHR_PAIRWISE_KEY")).subject(
            s, PHR_SECTOR, demo_person_id(DEMO_FAMILY.parent_citizen)
        )
    idp_db.dispose()
    secrets = {
        "parent's birth date": DEMO_FAMILY.parent_birth.isoformat(),
        "child's birth date": DEMO_FAMILY.child_birth(date.today()).isoformat(),
        "parent's pseudonym": DEMO_FAMILY.parent_code,
        "child's pseudonym": DEMO_FAMILY.child_code,
        "parent's Patient id": PARENT_ID,
        "child's Patient id": CHILD_ID,
        "the app's patient id": tokens["patient"],
        "IdP person id": demo_person_id(DEMO_FAMILY.parent_citizen),
        "mother's subject": mother,
        "father's subject": father,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "ID token": tokens["id_token"],
        "new access token": refreshed.json()["access_token"],
        "new refresh token": refreshed.json().get("refresh_token") or tokens["refresh_token"],
        "portal session": browser.cookies.get("phr_consent_session") or "-" * 40,
    }
    ours = [(e, line) for e, line in zip(lines.events(), lines.lines, strict=True)
            if not e["logger"].startswith(HARNESS)]  # fmt: skip
    assert len(ours) > 20, "the flow logs its requests"
    for event, line in ours:
        for what, value in secrets.items():
            # Tokens by their last part too (a JWT's signature): a log may cut one short.
            pieces = {value, value.rsplit(".", 1)[-1]} if "token" in what else {value}
            for piece in (p for p in pieces if len(p) >= 8):
                assert piece not in line, (what, event["service"], event["event"])
    access = [e for e, _ in ours if e["logger"] == "phr.access"]
    assert {e["service"] for e in access} >= {"idp", "consent", "fhir"}
    assert all(e["request_id"] for e in access) and all("ts" in e for e in access)
    queries = [e["query"] for e in access if e["query"]]
    assert any("code=-" in q for q in queries)  # the portal's callback: code blanked
    # The app's request id reached the PHR server and, through it, the consent decision.
    followed = {e["service"] for e, _ in ours if e["request_id"] == rid}
    assert followed == {"fhir", "consent"}
    # And the portal's own calls to the IdP (discovery, token) carry its page's request id.
    by_id: dict[str, set[str]] = {}
    for e in access:
        by_id.setdefault(e["request_id"], set()).add(e["service"])
    assert any(services == {"consent", "idp"} for services in by_id.values())
    assert all(json.loads(line) for _, line in ours)
    for cache in ("consent", "fhir"):
        assert _cache_lookups(cache) > lookups[cache], cache
