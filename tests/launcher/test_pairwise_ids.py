"""Pairwise identifiers all the way down (issue 14, item 2): two apps of two sectors, each
signed into by another parent of the same child, read everything they may about the child
from the real IdP, consent service and PHR server; no identifier-like string (ids, references,
identifier values, subjects, client ids, the launch patient) reaches both, each reads back by
its own ids, and one app's id is unknown (404) to the other."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from consent.models import Guardianship, PatientLink
from idp.clients import upsert_static
from idp.endpoints.interaction import demo_person_id
from idp.subjects import PHR_SECTOR, PairwiseSubjects
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.demo_data import DEMO_FAMILY, DEMO_MUNICIPALITY
from phr_core.identifiers import patient_id
from tests.portal.live_platform import Platform, platform_environ, running

TIMEOUT = 10
CITY = DEMO_MUNICIPALITY.code
CHILD = patient_id(CITY, DEMO_FAMILY.child_code)
SCOPE = (
    "openid offline_access launch/patient patient/Patient.rs patient/Immunization.rs "
    "patient/Observation.rs patient/Encounter.rs patient/RelatedPerson.rs "
    "patient/Provenance.rs patient/AuditEvent.rs"
)
APPS = {  # client id → redirect URI: two hosts, so two sectors
    "growth-app": "https://growth.example.jp/cb",
    "vaccine-app": "https://vaccines.example.org/cb",
}
# Identifiers of public registries (a city's 全国地方公共団体コード, a clinic's 医療機関コード)
# name institutions, not the person: they are clinical content like a vaccine code.
PUBLIC_SYSTEMS = ("urn:phr-platform:municipality-code", "urn:oid:")


@pytest.fixture
def environ(tmp_path: Path, database_url: str) -> dict[str, str]:
    return platform_environ(tmp_path, database_url)


@pytest.fixture
def platform(migrated: Settings) -> Iterator[Platform]:
    with running(migrated) as p:
        yield p


def _second_parent(settings: Settings) -> str:
    """Demo citizen 2, the child's father: linked at the consent service as a guardian."""
    idp_db = Database(settings.database_urls["idp"])
    try:
        with idp_db.session() as s:
            keys = PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY"))
            sub = keys.subject(s, PHR_SECTOR, demo_person_id(2))
            for client_id, redirect in APPS.items():
                meta = {
                    "client_id": client_id,
                    "client_name": client_id,
                    "redirect_uris": [redirect],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "token_endpoint_auth_method": "none",
                    "scope": SCOPE,
                }
                upsert_static(s, meta, None)
    finally:
        idp_db.dispose()
    consent_db = Database(settings.database_urls["consent"])
    try:
        with consent_db.session() as s:
            s.add(PatientLink(subject=sub, municipality=CITY, code="demo-father-0001"))
            s.add(
                Guardianship(
                    guardian=sub, municipality=CITY, child_code=DEMO_FAMILY.child_code,
                    relationship="father", ends_on=date(2099, 1, 1),
                )
            )  # fmt: skip
    finally:
        consent_db.dispose()
    return sub


def _sign_in(p: Platform, client_id: str, person: str) -> dict[str, Any]:
    """The app's authorization code flow with PKCE; the person picks the child."""
    redirect = APPS[client_id]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    browser = requests.Session()
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
        "scope": SCOPE, "state": "s", "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256", "aud": p.fhir,
    }  # fmt: skip
    resp = browser.get(p.idp + "/authorize", params=params, allow_redirects=False, timeout=10)
    for _ in range(8):
        location = resp.headers["Location"]
        if location.startswith(redirect):
            break
        url = p.idp + location if location.startswith("/") else location
        page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code == 302:
            resp = page
            continue
        assert page.status_code == 200, page.text[:300]
        req = parse_qs(urlsplit(url).query)["req"][0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        if "/login" in url:
            data = {"csrf": csrf.group(1), "req": req, "person": person}
            resp = browser.post(p.idp + "/login/dev", data=data, allow_redirects=False)
        else:
            assert f'value="{CHILD}"' in page.text  # the child is among the choices
            data = {"csrf": csrf.group(1), "req": req, "decision": "allow", "patient": CHILD}
            resp = browser.post(p.idp + "/consent", data=data, allow_redirects=False)
    code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        p.idp + "/token",
        data={"grant_type": "authorization_code", "client_id": client_id, "code": code,
              "redirect_uri": redirect, "code_verifier": verifier},
        timeout=TIMEOUT,
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


class AppView:
    """What one app received, and every identifier-like string in it."""

    def __init__(self, p: Platform, client_id: str, tokens: dict[str, Any]) -> None:
        self.p, self.client_id, self.tokens = p, client_id, tokens
        self.patient = tokens["patient"]
        self.texts: list[str] = [json.dumps(tokens)]
        self.found: set[str] = {self.patient, _claims(tokens["id_token"])["sub"]}
        self.refs: set[str] = set()

    def get(self, path: str, status: int = 200) -> dict[str, Any]:
        url = path if path.startswith("http") else self.p.fhir + path
        headers = {"Authorization": "Bearer " + self.tokens["access_token"]}
        resp = requests.get(url, headers=headers, timeout=TIMEOUT)
        assert resp.status_code == status, (self.client_id, path, resp.text[:300])
        self.texts.append(resp.text + json.dumps(dict(resp.headers)))
        body = resp.json()
        if status == 200:
            self._collect(body)
            if resp.headers.get("Location"):
                self.found.add(resp.headers["Location"].split("/_history")[0])
        return body

    def _collect(self, node: Any, top: bool = True) -> None:
        if isinstance(node, list):
            for v in node:
                self._collect(v, False)
            return
        if not isinstance(node, dict):
            return
        if node.get("resourceType") and isinstance(node.get("id"), str):
            self.found.add(node["id"])
            self.refs.add(f"{node['resourceType']}/{node['id']}")
        for key in ("reference", "fullUrl"):
            if isinstance(node.get(key), str):
                ref = node[key].split("/_history/")[0]
                self.found.update((ref, ref.rsplit("/", 1)[-1]))
        system = node.get("system")  # identifiers, agents' who.identifier too
        if isinstance(node.get("value"), str) and isinstance(system, str):
            self.found.update(() if system.startswith(PUBLIC_SYSTEMS) else (node["value"],))
        if isinstance(node.get("url"), str):  # Bundle links: the ids in their queries
            query = parse_qs(urlsplit(node["url"]).query)
            for name in ("patient", "subject", "_id", "identifier", "_cursor"):
                self.found.update(query.get(name, []))
        for v in node.values():
            self._collect(v, False)

    def read_everything(self) -> None:
        """Everything the app may read about the child: read, searches with paging and
        _include, $everything, history and vread, and the child's access trail."""
        me = f"/Patient/{self.patient}"
        self.get(me)
        self.get(me + "/$everything")
        self.get("/Patient")
        self.get(f"/Immunization?patient={self.patient}&_include=Immunization:patient")
        page = self.get(f"/Observation?subject=Patient/{self.patient}&_count=3")
        nxt = [x["url"] for x in page.get("link", []) if x["relation"] == "next"]
        assert nxt, "the child has more than one page of observations"
        self.get(nxt[0])
        for ref in sorted(self.refs)[:40]:
            rtype = ref.split("/")[0]
            if rtype in ("Immunization", "Observation", "Patient", "Provenance"):
                self.get(f"/{ref}/_history")
                self.get(f"/{ref}/_history/1")
        self.get("/Provenance")

    def trail(self) -> list[dict[str, Any]]:
        bundle = self.get(f"/AuditEvent?patient={self.patient}&_count=500")
        return [e["resource"] for e in bundle.get("entry", [])]


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_two_apps_of_two_sectors_share_no_identifier(platform: Platform) -> None:
    p = platform
    father = _second_parent(p.settings)
    mother = PairwiseSubjects(p.settings.secret("PHR_PAIRWISE_KEY"))
    idp_db = Database(p.settings.database_urls["idp"])
    with idp_db.session() as s:
        mother_sub = mother.subject(s, PHR_SECTOR, demo_person_id(DEMO_FAMILY.parent_citizen))
    idp_db.dispose()

    a = AppView(p, "growth-app", _sign_in(p, "growth-app", str(DEMO_FAMILY.parent_citizen)))
    b = AppView(p, "vaccine-app", _sign_in(p, "vaccine-app", "2"))
    assert a.patient != b.patient and CHILD not in (a.patient, b.patient)
    for app in (a, b):
        app.read_everything()
    trails = {app.client_id: app.trail() for app in (a, b)}

    # No identifier-like string reached both apps.
    assert a.found & b.found == set()
    # Nor anything the platform keeps to itself: the stored Patient id, the city's code, the
    # PHR-sector subjects (the sealed tokens hide them), or the other app's client id.
    secret = (CHILD, DEMO_FAMILY.child_code, DEMO_FAMILY.parent_code, mother_sub, father)
    for app, other in ((a, b), (b, a)):
        everything = "\n".join(app.texts)
        for value in (*secret, other.client_id):
            assert value not in everything, (app.client_id, value)

    # The trail names the other parent and the other app by role only; each app sees itself.
    words = {
        client: {a_["who"].get("display") for e in events for a_ in e["agent"]}
        for client, events in trails.items()
    }
    for client in APPS:
        assert {"this app", "you", "another app", "a guardian"} <= words[client], words[client]

    # Each app reads back by the ids it was given; an id of one app is unknown to the other.
    for app in (a, b):
        for ref in sorted(app.refs)[:30]:
            app.get("/" + ref)
    b.get(f"/Patient/{a.patient}", status=404)
    a.get(f"/Patient/{b.patient}", status=404)
    b.get(f"/Patient/{a.patient}/$everything", status=404)
    assert "entry" not in b.get(f"/Immunization?patient={a.patient}")
    obs = next(r for r in sorted(a.refs) if r.startswith("Observation/"))
    b.get("/" + obs, status=404)
