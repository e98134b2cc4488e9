"""What a consent looks like outside: a consent receipt the person downloads (fields after
ISO/IEC TS 27560:2023 as described by the W3C DPVCG guide, with a Kantara Consent Receipt
v1.1 layer), and a FHIR R4 Consent resource (one per consent; `meta.versionId` is the version).

Field names of 27560 are taken from the free DPV guide and a third-party table (consent.md §4.2
says "partly verified"): check them against the purchased standard before freezing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from consent.models import ConsentVersion
from consent.records import (
    ACTIVE,
    CATEGORIES,
    CATEGORY_NAMES,
    PROVIDER,
    ConsentView,
    as_utc,
    iso,
)
from phr_core.config import Settings
from phr_core.identifiers import MUNICIPALITY_CODE_SYSTEM, pseudonym_system

RECEIPT_SCHEMA = (
    "ISO/IEC TS 27560:2023 receipt (phr-platform v1, after w3id.org/dpv/guides/consent-27560)"
)
KANTARA_VERSION = "KI-CR-v1.1.0"
SUBJECT_SYSTEM = "urn:phr-platform:phr-sector-subject"
CLIENT_SYSTEM = "urn:phr-platform:client-id"
CONSENT_SYSTEM = "urn:phr-platform:consent"
CATEGORY_SYSTEM = "urn:phr-platform:consent-category"
KIND_SYSTEM = "urn:phr-platform:consent-kind"
RECEIPT_NAMESPACE = uuid.UUID("6c1f7a52-2f0e-4d3a-9a37-9d7d1f6b5e10")


def policy_url(settings: Settings) -> str:
    """The privacy notice every consent refers to (served by the portal)."""
    return settings.urls["consent"] + "/privacy"


def _category_labels(categories: Sequence[str], lang: str) -> list[str]:
    i = 0 if lang == "ja" else 1
    return [CATEGORY_NAMES[c][i] for c in categories if c in CATEGORY_NAMES]


def receipt(
    view: ConsentView, versions: Sequence[ConsentVersion], settings: Settings
) -> dict[str, object]:
    """The receipt of one version of a consent, with every event up to it."""
    r, v = view.record, view.version
    lang = v.language
    given = as_utc(versions[0].recorded_at) if versions else as_utc(r.created_at)
    receipt_id = str(uuid.uuid5(RECEIPT_NAMESPACE, f"{r.id}/{v.version}"))
    provider = r.kind == PROVIDER
    controller = {
        "name": v.actor_name if provider else "PHR platform consent service",
        "url": settings.urls["consent"],
    }
    third_party = None if provider else {"name": v.actor_name, "client_id": r.actor}
    body: dict[str, object] = {
        "schema_version": RECEIPT_SCHEMA,
        "receipt_id": receipt_id,
        "record_id": r.id,
        "record_version": v.version,
        "language": lang,
        "pii_principal_id": r.subject,
        "on_behalf_of": (
            {"municipality": r.patient_municipality, "code": r.patient_code}
            if r.patient_code
            else None
        ),
        "pii_controllers": [controller],
        "privacy_notice": policy_url(settings),
        "collection_method": v.collection_method,
        "purposes": [
            {
                "purpose": v.purpose,
                "lawful_basis": "consent",
                "pii_information": list(v.categories),
                "pii_information_labels": _category_labels(v.categories, lang),
                "processing": list(v.actions),
                "scopes": list(v.scopes),
                "third_party": third_party,
            }
        ],
        "sensitive": True,
        "spi_categories": ["health"],
        "status": view.state(),
        "period": {"start": iso(as_utc(v.period_start)), "end": iso(as_utc(v.period_end))},
        "events": [
            {
                "version": e.version,
                "time": iso(as_utc(e.recorded_at)),
                "type": e.event,
                "manner": "explicit",
                "mechanism": e.collection_method,
                "recorded_by": e.recorded_by,
                "reason": e.reason,
            }
            for e in versions
            if e.version <= v.version
        ],
        "kantara": {
            "version": KANTARA_VERSION,
            "jurisdiction": "JP",
            "consentTimestamp": int(given.timestamp()) if given else None,
            "collectionMethod": v.collection_method,
            "consentReceiptID": receipt_id,
            "language": lang,
            "piiPrincipalId": r.subject,
            "piiControllers": [
                {
                    "piiController": controller["name"],
                    "contact": controller["url"],
                    "address": None,
                    "email": None,
                    "phone": None,
                }
            ],
            "policyUrl": policy_url(settings),
            "services": [
                {
                    "service": (
                        "自治体から PHR 基盤への提供 / provision by the municipality"
                        if provider
                        else f"アプリへの提供 / sharing with {v.actor_name}"
                    ),
                    "purposes": [
                        {
                            "purpose": v.purpose,
                            "purposeCategory": ["personal health record"],
                            "consentType": "EXPLICIT",
                            "piiCategory": _category_labels(v.categories, lang),
                            "primaryPurpose": True,
                            "termination": (
                                iso(as_utc(v.period_end)) or "until withdrawn in the portal"
                            ),
                            "thirdPartyDisclosure": not provider,
                            "thirdPartyName": None if provider else v.actor_name,
                        }
                    ],
                }
            ],
            "sensitive": True,
            "spiCat": ["health"],
        },
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    body["integrity"] = {
        "algorithm": "sha-256",
        "digest": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    }
    return body


def _patient(view: ConsentView) -> dict[str, object]:
    r = view.record
    if r.patient_code and r.patient_municipality:
        return {
            "identifier": {
                "system": pseudonym_system(r.patient_municipality),
                "value": r.patient_code,
            }
        }
    return {"identifier": {"system": SUBJECT_SYSTEM, "value": r.subject}}


def fhir_consent(view: ConsentView, settings: Settings) -> dict[str, object]:
    """The consent (at the view's version) as a FHIR R4 Consent resource."""
    r, v = view.record, view.version
    provider = r.kind == PROVIDER
    if r.patient_code:
        performer = {
            "type": "RelatedPerson",
            "identifier": {"system": SUBJECT_SYSTEM, "value": r.subject},
            "display": "guardian / 保護者",
        }
    else:
        performer = {
            "type": "Patient",
            "identifier": {"system": SUBJECT_SYSTEM, "value": r.subject},
        }
    if provider:
        actor = {
            "role": _cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "CST"),
            "reference": {
                "type": "Organization",
                "identifier": {"system": MUNICIPALITY_CODE_SYSTEM, "value": r.actor},
                "display": v.actor_name,
            },
        }
        organization = actor["reference"]
    else:
        actor = {
            "role": _cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
            "reference": {
                "type": "Device",
                "identifier": {"system": CLIENT_SYSTEM, "value": r.actor},
                "display": v.actor_name,
            },
        }
        organization = {"display": "PHR platform consent service"}
    classes = sorted({t for c in v.categories for t in CATEGORIES.get(c, ())})
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {
            k: val
            for k, val in (
                ("start", iso(as_utc(v.period_start))),
                ("end", iso(as_utc(v.period_end))),
            )
            if val
        },
        "actor": [actor],
        "action": [
            _cc("http://terminology.hl7.org/CodeSystem/consentaction", a) for a in v.actions
        ],
        "purpose": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": "PATRQT",
                "display": "patient requested",
            }
        ],
        "class": [{"system": "http://hl7.org/fhir/resource-types", "code": t} for t in classes],
        "code": [
            {
                "coding": [
                    {"system": CATEGORY_SYSTEM, "code": c, "display": CATEGORY_NAMES[c][1]}
                    for c in v.categories
                ],
                "text": v.purpose or None,
            }
        ]
        if v.categories
        else None,
    }
    provision = {k: val for k, val in provision.items() if val}
    if provision.get("code"):
        provision["code"] = [{k: val for k, val in c.items() if val} for c in provision["code"]]
    return {
        "resourceType": "Consent",
        "id": r.id,
        "meta": {"versionId": str(v.version), "lastUpdated": iso(as_utc(v.recorded_at))},
        "identifier": [{"system": CONSENT_SYSTEM, "value": r.id}],
        "status": "active" if v.status == ACTIVE else "inactive",
        "scope": _cc("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
        "category": [
            _cc("http://loinc.org", "59284-0", "Patient Consent"),
            _cc(KIND_SYSTEM, r.kind),
        ],
        "patient": _patient(view),
        "dateTime": iso(as_utc(r.created_at)),
        "performer": [performer],
        "organization": [organization],
        "policy": [{"uri": policy_url(settings)}],
        "provision": provision,
    }


def fhir_bundle(views: Sequence[ConsentView], settings: Settings) -> dict[str, object]:
    """A person's consents as one FHIR Bundle (collection) for download."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"{settings.urls['consent']}/api/v1/consents/{v.id}/fhir",
                "resource": fhir_consent(v, settings),
            }
            for v in views
        ],
    }


def _cc(system: str, code: str, display: str | None = None) -> dict[str, object]:
    coding: dict[str, str] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}
