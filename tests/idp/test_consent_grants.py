"""The IdP with the real consent service, both on loopback HTTP: the consent screen records the
grant there (with the PHR-sector subject), access tokens carry its id, the consent API reads the
sealed tokens, and a revocation in the consent service stops refresh and brings the consent
screen back."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from flask import Flask
from werkzeug.serving import make_server

from idp.app import create_app as create_idp
from idp.app import prepare
from idp.clients import upsert_static
from phr_core.config import Settings, load_settings
from phr_core.grant_description import day
from portal.app import create_app as create_consent
from tests.conftest import free_port
from tests.idp.conftest import REDIRECT, Browser, basic, code_request, pkce_pair, token_claims
from tests.idp.conftest import exchange as code_for_tokens


@dataclass
class Pair:
    idp: Flask
    consent: Flask
    settings: Settings


@pytest.fixture
def pair(migrated: Settings) -> Iterator[Pair]:
    idp_port, consent_port = free_port(), free_port()
    settings = load_settings(
        {
            **migrated.environ,
            "PHR_ISSUER": f"http://127.0.0.1:{idp_port}",
            "PHR_CONSENT_URL": f"http://127.0.0.1:{consent_port}",
        }
    )
    prepare(settings)
    idp_app, consent_app = create_idp(settings), create_consent(settings)
    servers = [
        make_server("127.0.0.1", idp_port, idp_app, threaded=True),
        make_server("127.0.0.1", consent_port, consent_app, threaded=True),
    ]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield Pair(idp_app, consent_app, settings)
    finally:
        for srv in servers:
            srv.shutdown()
        for app in (idp_app, consent_app):
            app.extensions["phr_db"].dispose()


def _consent_api(pair: Pair, path: str, method: str = "GET") -> dict:
    grants = pair.idp.extensions["idp"].grants
    with pair.idp.app_context():
        token = grants._service_token(pair.idp.extensions["idp"])
    req = urllib.request.Request(  # noqa: S310 (loopback test servers)
        pair.settings.urls["consent"] + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback)
        return json.load(resp)


def test_grants_live_in_the_consent_service(pair: Pair) -> None:
    app = pair.idp
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "growth-app",
                "client_name": "すくすく成長アプリ",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access patient/Immunization.rs patient/Observation.rs",
                "purpose": "予防接種の予定を表示するため",
            },
            "growth-secret-" + "x" * 30,
        )
    rp = {"client_id": "growth-app", "redirect_uris": [REDIRECT]}
    auth = basic("growth-app", "growth-secret-" + "x" * 30)
    browser = Browser(app.test_client())
    scope = "openid offline_access patient/Immunization.rs"

    def flow() -> dict:
        verifier, challenge = pkce_pair()
        back = browser.authorize(**code_request(rp, challenge, scope=scope))
        return app.test_client().post(
            "/token",
            data={"grant_type": "authorization_code", "code": back["code"][0],
                  "redirect_uri": REDIRECT, "code_verifier": verifier},
            headers=auth,
        ).get_json()  # fmt: skip

    tokens = flow()
    claims = token_claims(app, tokens["access_token"])
    grant = _consent_api(pair, f"/api/v1/grants/{claims['grant_id']}")
    assert grant["status"] == "active" and grant["client_id"] == "growth-app"
    assert grant["subject"] == claims["sub"]  # the PHR-sector subject
    assert sorted(grant["scopes"]) == sorted(scope.split())
    assert grant["categories"] == ["vaccination"]
    assert grant["purpose"] == "予防接種の予定を表示するため"

    flow()  # the same scopes again: not asked again
    assert browser.pages.count("/consent") == 1

    _consent_api(pair, f"/api/v1/grants/{claims['grant_id']}/revoke", "POST")
    refresh = app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=auth,
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    flow()  # the person is asked again
    assert browser.pages.count("/consent") == 2


def test_smart_patient_is_picked_on_the_consent_screen(pair: Pair) -> None:
    """A parent linked to a city with one child: a `patient/`-scoped app makes the consent screen
    ask whose record it opens (labelled by city and birth month, never a name); the token
    response and the access token then name that Patient, on refresh too."""
    from datetime import date

    from consent.models import Guardianship, Municipality, PatientLink
    from idp.endpoints.interaction import demo_person_id
    from idp.subjects import PHR_SECTOR
    from phr_core.identifiers import patient_id
    from phr_core.pairwise_ids import CLAIM, decode_key, for_key

    app = pair.idp
    ctx = app.extensions["idp"]
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "school-app",
                "client_name": "学校アプリ",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid offline_access launch/patient patient/Immunization.rs",
            },
            "school-secret-" + "x" * 30,
        )
        sub = ctx.subjects.subject(s, PHR_SECTOR, demo_person_id(1))
    with pair.consent.extensions["phr_db"].session() as s:
        if s.get(Municipality, "072028") is None:
            s.add(Municipality(code="072028", name_ja="会津若松市", name_en="Aizuwakamatsu"))
            s.flush()
        s.add(PatientLink(subject=sub, municipality="072028", code="PARENT-1"))
        s.add(
            Guardianship(
                guardian=sub, municipality="072028", child_code="CHILD-1",
                relationship="mother", ends_on=date(2043, 4, 2),
            )
        )  # fmt: skip
    rp = {"client_id": "school-app", "redirect_uris": [REDIRECT]}
    auth = basic("school-app", "school-secret-" + "x" * 30)
    scope = "openid offline_access launch/patient patient/Immunization.rs"
    child = patient_id("072028", "CHILD-1")

    # Without a choice the screen comes back (400) with both records to pick from.
    browser = Browser(app.test_client())
    verifier, challenge = pkce_pair()
    try:
        browser.authorize(**code_request(rp, challenge, scope=scope))
    except AssertionError as stopped:
        assert "stopped at 400" in str(stopped)
    else:
        raise AssertionError("the consent screen accepted no choice")
    page = browser.last_page
    assert "あなた（会津若松市）" in page and "お子さん・2025年4月生まれ（会津若松市）" in page
    assert f'value="{patient_id("072028", "PARENT-1")}"' in page and f'value="{child}"' in page
    assert "PARENT-1" not in page and "CHILD-1" not in page  # codes never reach the browser

    # A record outside the person's reach is refused like no choice.
    browser = Browser(app.test_client(), patient=patient_id("072028", "SOMEONE-ELSE"))
    try:
        browser.authorize(**code_request(rp, challenge, scope=scope))
    except AssertionError as stopped:
        assert "stopped at 400" in str(stopped)
    else:
        raise AssertionError("the consent screen accepted a foreign patient")

    browser = Browser(app.test_client(), patient=child)
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope=scope))
    tokens = app.test_client().post(
        "/token",
        data={"grant_type": "authorization_code", "code": back["code"][0],
              "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers=auth,
    ).get_json()  # fmt: skip
    # The app knows the record by its own sector's id; the PHR server, inside the sealed
    # token, by the real one and the sector's key that maps the two (phr_core.pairwise_ids).
    with app.extensions["phr_db"].session() as s:
        key = ctx.subjects.id_key(s, "rp.example.jp")
    mine = for_key(key).out("Patient", child)
    assert tokens["patient"] == mine != child
    claims = token_claims(app, tokens["access_token"])
    assert claims["patient"] == child and decode_key(claims[CLAIM]) == key
    refreshed = (
        app.test_client()
        .post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=auth,
        )
        .get_json()
    )
    assert refreshed["patient"] == mine

    # Only `patient/` scopes carry a launch patient.
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope="openid"))
    plain = app.test_client().post(
        "/token",
        data={"grant_type": "authorization_code", "code": back["code"][0],
              "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers=auth,
    ).get_json()  # fmt: skip
    assert "patient" not in plain


def test_the_parent_unticks_a_data_type(pair: Pair) -> None:
    """The consent screen describes the app (publisher, purpose, expiry date, policy links) and
    shows each data type as a ticked checkbox; the parent unticks Observation: the grant, the
    code and the access token carry Immunization only, and the consent service keeps what the
    screen showed for the portal. A form adding a type the app did not ask for is refused, and
    so is one that unticks everything."""
    app = pair.idp
    with app.extensions["phr_db"].session() as s:
        upsert_static(
            s,
            {
                "client_id": "growth-app",
                "client_name": "すくすく成長アプリ",
                "organization_name": "すくすく株式会社",
                "purpose": "予防接種の予定と成長を表示するため",
                "purpose#en": "To show vaccinations and growth",
                "policy_uri": "https://growth.example.jp/privacy",
                "tos_uri": "https://growth.example.jp/terms",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid patient/Immunization.rs patient/Observation.rs",
            },
            "growth-secret-" + "x" * 30,
        )
    rp = {"client_id": "growth-app", "client_secret": "growth-secret-" + "x" * 30,
          "redirect_uris": [REDIRECT]}  # fmt: skip
    scope = "openid patient/Immunization.rs patient/Observation.rs"
    immunization = {"scopes_offered": "1", "scope": ["patient/Immunization.rs"]}

    for refused in (
        {"scopes_offered": "1", "scope": ["patient/Immunization.rs", "patient/Condition.rs"]},
        {"scopes_offered": "1", "scope": []},
    ):
        browser = Browser(app.test_client(), choose=refused)  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match="stopped at 400"):
            browser.authorize(**code_request(rp, pkce_pair()[1], scope=scope))

    browser = Browser(app.test_client(), choose=immunization)  # type: ignore[arg-type]
    verifier, challenge = pkce_pair()
    back = browser.authorize(**code_request(rp, challenge, scope=scope))
    page = browser.consent_page
    for value in ("patient/Immunization.rs", "patient/Observation.rs"):
        assert f'name="scope" value="{value}" checked' in page  # ticked as the app asked
    assert "すくすく株式会社" in page and "予防接種の予定と成長を表示するため" in page
    assert 'href="https://growth.example.jp/privacy"' in page and "利用規約" in page
    assert "取り消すまで" not in page
    tokens = code_for_tokens(app, rp, back["code"][0], verifier).get_json()
    assert tokens["scope"].split() == ["openid", "patient/Immunization.rs"]
    claims = token_claims(app, tokens["access_token"])
    assert "Observation" not in claims["scope"]
    grant = _consent_api(pair, f"/api/v1/grants/{claims['grant_id']}")
    assert grant["scopes"] == ["openid", "patient/Immunization.rs"]
    with pair.consent.extensions["phr_db"].session() as s:
        from consent.models import ConsentVersion

        details = s.get(ConsentVersion, (claims["grant_id"], 1)).details
    assert details["publisher"]["ja"] == "すくすく株式会社"
    assert details["purpose"]["en"] == "To show vaccinations and growth"
    # The date the screen showed is the grant's end.
    ends = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))
    assert f"{day(ends, 'ja')}まで" in page
    # Asking again for what was granted needs no consent screen.
    browser.authorize(**code_request(rp, pkce_pair()[1], scope="openid patient/Immunization.rs"))
    assert browser.pages.count("/consent") == 1
