"""An independent, maintained FHIR client reads the PHR server through the API: `fhirclient`
(the SMART on FHIR Python client, PyPI) does the whole SMART launch itself, discovering the
OAuth endpoints from our CapabilityStatement, with PKCE, then parses our resources into its own
FHIR R4 models. The sign-in in between is the sandbox parent's virtual card (`phr card sign`)
and the consent screen, where she picks her child: the `patient` fhirclient receives."""

from __future__ import annotations

import pytest

from tests.apps.conftest import BODY_MEASUREMENTS, Sandbox, sign_in_with_card

fhirclient = pytest.importorskip("fhirclient", reason="pip install -e '.[dev]' installs fhirclient")
from fhirclient import client  # noqa: E402
from fhirclient.models.immunization import Immunization  # noqa: E402
from fhirclient.models.observation import Observation  # noqa: E402
from fhirclient.models.patient import Patient  # noqa: E402

SCOPE = (
    "openid offline_access launch/patient "
    "patient/Patient.rs patient/Immunization.rs " + BODY_MEASUREMENTS
)


def test_fhirclient_reads_the_launch_patient(sandbox: Sandbox) -> None:
    sb = sandbox
    # The sandbox's own demo client, as docs/apps.md has developers use it; its redirect URI
    # (port 8010) is never fetched: the test reads the code off the IdP's redirect.
    redirect_uri = "http://127.0.0.1:8010/callback"
    smart = client.FHIRClient(
        settings={
            "app_id": "demo-vaccination-app",
            "api_base": sb.fhir,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
        }
    )
    assert not smart.ready
    authorize_url = smart.authorize_url  # fhirclient reads our CapabilityStatement's oauth-uris
    assert authorize_url.startswith(sb.idp + "/authorize")
    callback = sign_in_with_card(sb, authorize_url, redirect_uri)
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

    # The granular scope lets body measurements through and nothing else (the child's birth
    # record also holds Apgar scores, and each checkup a judgement: neither is visible).
    observations = list(
        Observation.where(struct={"patient": smart.patient_id}).perform_resources_iter(server)
    )
    assert len(observations) >= len(weights)
    for o in observations:
        assert "body-measurement" in {c.code for cat in o.category for c in cat.coding}

    # The launch patient is the only record this token opens: a search without `patient`
    # returns the same Immunizations, nothing of the parent's.
    everything = list(Immunization.where(struct={}).perform_resources_iter(server))
    assert {i.id for i in everything} == {s.id for s in shots}
