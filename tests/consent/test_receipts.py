"""What leaves the service: consent receipts (ISO/IEC TS 27560 fields with a Kantara v1.1
layer) and FHIR R4 Consent resources, checked against the fhir.resources models."""

from __future__ import annotations

import hashlib
import json

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from flask.testing import FlaskClient

from tests.consent.conftest import CITY, Tokens, link_city

MOTHER = "phr-sub-mother-r"
KANTARA_REQUIRED = (
    "version",
    "jurisdiction",
    "consentTimestamp",
    "collectionMethod",
    "consentReceiptID",
    "language",
    "piiPrincipalId",
    "piiControllers",
    "policyUrl",
    "services",
    "sensitive",
    "spiCat",
)


def _grant(client: FlaskClient, tokens: Tokens) -> str:
    r = client.post(
        "/api/v1/grants",
        json={
            "subject": MOTHER,
            "client_id": "growth-app",
            "client_name": "すくすく成長アプリ",
            "scopes": ["patient/Immunization.rs"],
            "categories": ["vaccination"],
            "purpose": "予防接種の予定を表示するため",
        },
        headers=tokens.idp,
    )
    return r.json["id"]


def test_receipt_of_an_app_grant_and_its_withdrawal(client: FlaskClient, tokens: Tokens) -> None:
    gid = _grant(client, tokens)
    first = client.get(f"/api/v1/consents/{gid}/receipt", headers=tokens.idp).json
    assert first["record_id"] == gid and first["record_version"] == 1
    assert first["pii_principal_id"] == MOTHER
    assert first["status"] == "active" and first["sensitive"] is True
    assert first["purposes"][0]["third_party"] == {
        "name": "すくすく成長アプリ",
        "client_id": "growth-app",
    }
    assert first["purposes"][0]["pii_information_labels"] == ["予防接種"]
    assert [e["type"] for e in first["events"]] == ["consent_given"]
    kantara = first["kantara"]
    assert set(KANTARA_REQUIRED) <= set(kantara)
    assert kantara["version"] == "KI-CR-v1.1.0" and kantara["jurisdiction"] == "JP"
    assert kantara["services"][0]["purposes"][0]["thirdPartyDisclosure"] is True
    assert kantara["policyUrl"].endswith("/privacy")

    body = {k: v for k, v in first.items() if k != "integrity"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert first["integrity"]["digest"] == hashlib.sha256(canonical.encode()).hexdigest()

    client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    second = client.get(f"/api/v1/consents/{gid}/receipt", headers=tokens.idp).json
    assert second["record_version"] == 2 and second["status"] == "revoked"
    assert second["receipt_id"] != first["receipt_id"]
    assert [e["type"] for e in second["events"]] == ["consent_given", "consent_withdrawn"]
    # The receipt of version 1 is still exactly the receipt given then.
    again = client.get(f"/api/v1/consents/{gid}/receipt?version=1", headers=tokens.idp).json
    assert again == first
    download = client.get(f"/api/v1/consents/{gid}/receipt?download=1", headers=tokens.idp)
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="consent-receipt-{gid}-v2.json"'
    )


def test_fhir_consents_validate(client: FlaskClient, tokens: Tokens) -> None:
    child = {"code": "CODE-CHILD-R", "birthdate": "2025-01-10", "relationship": "mother"}
    link_city(client, tokens, MOTHER, "CODE-MOTHER-R", children=[child])
    gid = _grant(client, tokens)

    app_consent = client.get(f"/api/v1/consents/{gid}/fhir", headers=tokens.idp).json
    c = Consent.model_validate(app_consent)
    assert c.status == "active" and c.meta.versionId == "1"
    assert c.provision.actor[0].role.coding[0].code == "IRCP"
    assert c.provision.actor[0].reference.identifier.value == "growth-app"
    assert [x.code for x in c.provision.class_fhir] == ["Immunization"]
    assert c.provision.action[0].coding[0].code == "access"

    bundle = client.get(f"/api/v1/subjects/{MOTHER}/consents/fhir", headers=tokens.idp).json
    b = Bundle.model_validate(bundle)
    consents = [e.resource for e in b.entry]
    assert len(consents) == 3
    own, for_child = consents[0], consents[1]
    assert own.provision.actor[0].reference.identifier.value == CITY
    assert own.provision.action[0].coding[0].code == "collect"
    assert own.performer[0].type == "Patient"
    assert for_child.performer[0].type == "RelatedPerson"
    assert for_child.patient.identifier.system == f"urn:phr-platform:pseudonym:{CITY}"
    assert for_child.patient.identifier.value == "CODE-CHILD-R"

    client.post(f"/api/v1/grants/{gid}/revoke", headers=tokens.idp)
    revoked = Consent.model_validate(
        client.get(f"/api/v1/consents/{gid}/fhir", headers=tokens.idp).json
    )
    assert revoked.status == "inactive" and revoked.meta.versionId == "2"
