"""An independent, maintained FHIR client reads the PHR server through the API: `fhirclient`
(the SMART on FHIR Python client, PyPI) does the whole SMART launch itself, discovering the
OAuth endpoints from our CapabilityStatement, with PKCE, then parses our resources into its own
FHIR R4 models. The sign-in in between is the sandbox parent's virtual card (`phr card sign`)
and the consent screen, where she picks her child: the `patient` fhirclient receives."""

from __future__ import annotations

import html
import os
import re
import subprocess
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from phr_core.sandbox import AUTH_PIN
from tests.apps.conftest import APP_ID, Sandbox
from tests.test_run import PHR

fhirclient = pytest.importorskip("fhirclient", reason="pip install -e '.[dev]' installs fhirclient")
from fhirclient import client  # noqa: E402
from fhirclient.models.immunization import Immunization  # noqa: E402
from fhirclient.models.observation import Observation  # noqa: E402
from fhirclient.models.patient import Patient  # noqa: E402

SCOPE = (
    "openid offline_access launch/patient "
    "patient/Patient.rs patient/Immunization.rs patient/Observation.rs"
)
TIMEOUT = 15


def _field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, page[:500]
    return html.unescape(m.group(1))


def _sign_in_with_card(sb: Sandbox, authorize_url: str, redirect_uri: str) -> str:
    """Play the browser from the authorization request to the redirect back to the app: the
    card panel's short code signed with `phr card sign`, then the consent screen with the
    child's record chosen. Returns the callback URL."""
    browser = requests.Session()
    resp = browser.get(authorize_url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(8):
        assert resp.status_code in (302, 303), (resp.status_code, resp.text[:300])
        location = urljoin(resp.url, resp.headers["Location"])
        if location.startswith(redirect_uri):
            return location
        page = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code in (302, 303):
            resp = page
            continue
        path = urlsplit(location).path
        if path.startswith("/login"):
            code = re.search(r"<code>([^<]+)</code>", page.text)
            done = re.search(r'data-card-done="([^"]+)"', page.text)
            assert code and done, page.text[:500]
            signed = subprocess.run(
                [*PHR, "card", "sign", code.group(1), "--card", str(sb.card), "--pin-stdin"],
                env={**os.environ, **sb.env}, input=f"{AUTH_PIN}\n",
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert signed.returncode == 0, signed.stdout + signed.stderr
            resp = browser.get(
                urljoin(location, html.unescape(done.group(1))),
                allow_redirects=False,
                timeout=TIMEOUT,
            )
        else:
            assert path.startswith("/consent"), location
            choices = re.findall(
                r'name="patient" value="([^"]+)"[^>]*>\s*([^<]+)</label>', page.text
            )
            child = [pid for pid, label in choices if "お子さま" in label]
            assert len(child) == 1, choices
            data = {
                "csrf": _field(page.text, "csrf"),
                "req": parse_qs(urlsplit(location).query)["req"][0],
                "patient": child[0],
                "decision": "allow",
            }
            resp = browser.post(
                urljoin(location, "/consent"), data=data, allow_redirects=False, timeout=TIMEOUT
            )
    raise AssertionError("too many redirects")


def test_fhirclient_reads_the_launch_patient(sandbox: Sandbox) -> None:
    sb = sandbox
    redirect_uri = f"{sb.app}/callback"  # registered for the test app; never actually fetched
    smart = client.FHIRClient(
        settings={
            "app_id": APP_ID,
            "api_base": sb.fhir,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
        }
    )
    assert not smart.ready
    authorize_url = smart.authorize_url  # fhirclient reads our CapabilityStatement's oauth-uris
    assert authorize_url.startswith(sb.idp + "/authorize")
    callback = _sign_in_with_card(sb, authorize_url, redirect_uri)
    smart.handle_callback(callback)  # state check, code exchange with the PKCE verifier
    assert smart.ready
    assert smart.patient_id  # the SMART launch patient from the token response

    server = smart.server
    child = Patient.read(smart.patient_id, server)
    assert child.id == smart.patient_id
    assert child.birthDate is not None
    assert child.identifier[0].system.startswith("urn:phr-platform:pseudonym:")
    assert not child.name and not child.address  # the PHR server holds no names or addresses

    shots = list(
        Immunization.where(struct={"patient": smart.patient_id}).perform_resources_iter(server)
    )
    assert len(shots) >= 10
    assert {s.patient.reference for s in shots} == {f"Patient/{smart.patient_id}"}
    assert all(s.status == "completed" for s in shots)
    assert "HepB" in {c.code for s in shots for c in s.vaccineCode.coding}

    weights = list(
        Observation.where(
            struct={"patient": smart.patient_id, "code": "http://loinc.org|29463-7"}
        ).perform_resources_iter(server)
    )
    assert weights, "the sandbox child's infant checkups carry body weight"
    for w in weights:
        assert w.valueQuantity.unit == "kg"
        assert any(c.code == "29463-7" for c in w.code.coding)

    # The launch patient is the only record this token opens: a search without `patient`
    # returns the same Immunizations, nothing of the parent's.
    everything = list(Immunization.where(struct={}).perform_resources_iter(server))
    assert {i.id for i in everything} == {s.id for s in shots}
