"""What the server says about itself: the CapabilityStatement at /metadata (built from the
same tables the code runs on, so it cannot claim more than it does) and the SMART
configuration at /.well-known/smart-configuration. Neither needs a token."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from phr_core.webapp import settings
from phr_server import profiles
from phr_server.indexing import COMMON, TYPES

bp = Blueprint("fhir_metadata", __name__)

KIND = {"token": "token", "date": "date", "reference": "reference"}
SCOPES = [
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.rs",
    "patient/*.read",
    *(f"patient/{t}.rs" for t in TYPES if t not in ("Provenance",)),
    "system/*.cu",
    "system/*.write",
]


def capability_statement(base: str) -> dict[str, Any]:
    resources = []
    for name, spec in TYPES.items():
        interactions = ["read", "vread", "history-instance", "search-type"]
        if spec.writable:
            interactions.append("update")
        r: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": c} for c in interactions],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": spec.writable,
            "conditionalCreate": spec.writable,
            "conditionalUpdate": spec.writable,
            "conditionalRead": "not-supported",
            "conditionalDelete": "not-supported",
            "searchParam": [
                {
                    "name": p.name,
                    "type": KIND[p.kind],
                    **({"documentation": p.doc} if p.doc else {}),
                }
                for p in [*COMMON.values(), *spec.params.values()]
            ],
        }
        if profiles.SUPPORTED.get(name):
            # exactly the JP Core profiles validation checks (profiles.py)
            r["supportedProfile"] = list(profiles.SUPPORTED[name])
        if "patient" in spec.params:
            r["searchInclude"] = [f"{name}:patient"] + (
                [f"{name}:subject"] if "subject" in spec.params else []
            )
        if name == "Patient":
            r["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
        resources.append(r)
    issuer = settings().issuer
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "PHR platform",
        "kind": "instance",
        "software": {"name": "phr_server"},
        "implementation": {"description": "Consent-gated FHIR R4 PHR server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Every request needs an access token from the platform's IdP (Bearer, or "
                    "DPoP with a proof for DPoP-bound tokens). Reads "
                    "see only the Patients the person may reach under an active consent grant; "
                    "writes are transaction Bundles from connectors (system/ scopes). Search "
                    "pages with _count and opaque _cursor links; unknown parameters are a 400."
                ),
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "authorize", "valueUri": issuer + "/authorize"},
                                {"url": "token", "valueUri": issuer + "/token"},
                            ],
                        }
                    ],
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}],
                "searchParam": [
                    {"name": "_count", "type": "number"},
                    {"name": "_sort", "type": "string"},
                    {"name": "_summary", "type": "token"},
                ],
            }
        ],
    }


@bp.get("/metadata")
def metadata() -> ResponseReturnValue:
    body = capability_statement(settings().urls["fhir"])
    return Response(
        json.dumps(body, ensure_ascii=False), content_type="application/fhir+json; charset=utf-8"
    )


_discovery: dict[str, Any] = {}
_lock = threading.Lock()


def _idp_endpoints(issuer: str) -> dict[str, Any]:
    """The IdP's OpenID configuration (cached 5 minutes); conventional paths if it is down."""
    now = time.monotonic()
    with _lock:
        hit = _discovery.get(issuer)
        if hit and hit[0] > now:
            return hit[1]
    doc: dict[str, Any] = {}
    try:
        url = issuer + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - configured issuer
            doc = json.load(resp)
    except (OSError, ValueError):
        doc = {}
    with _lock:
        _discovery[issuer] = (now + (300 if doc else 10), doc)
    return doc


@bp.get("/.well-known/smart-configuration")
def smart_configuration() -> ResponseReturnValue:
    issuer = settings().issuer
    idp = _idp_endpoints(issuer)
    body = {
        "issuer": issuer,
        "jwks_uri": idp.get("jwks_uri", issuer + "/jwks"),
        "authorization_endpoint": idp.get("authorization_endpoint", issuer + "/authorize"),
        "token_endpoint": idp.get("token_endpoint", issuer + "/token"),
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": idp.get(
            "token_endpoint_auth_methods_supported", ["private_key_jwt", "client_secret_basic"]
        ),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "sso-openid-connect",
            "permission-patient",
            "permission-v1",
            "permission-v2",
        ],
    }
    for key in ("introspection_endpoint", "revocation_endpoint"):
        if key in idp:
            body[key] = idp[key]
    return Response(json.dumps(body), content_type="application/json")
