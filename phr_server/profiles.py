"""JP Core profiles (JP Core v1.2.0, canonical http://jpfhir.jp/fhir/core): which ones the server
knows, the constraints of theirs that it checks on write, and naming them in `meta.profile`.

A resource may name JP Core profiles in `meta.profile` (the connectors do); each is checked.
A resource that names none gets its type's default JP Core profile (JP_Observation_Common for
an Observation), checked the same way. A profile the server does not know is refused: naming it
would claim a conformance nobody checked. Types without a JP Core profile (Claim,
ExplanationOfBenefit, Provenance, AuditEvent) keep an empty `meta.profile`; so does a
MedicationDispense that names none: JP_MedicationDispense asks for what a claim does not carry
(the Rp number, the order in the Rp, the dispensed quantity with its unit code), so it is checked
when named but never assumed.

Checked, per profile, from the profiles' FSH in jami-fhir-jp-wg/jp-core-v1x (input/fsh/profiles/,
the file named; the canonical URL of each is its `^url` there):

* JP_Patient (JP_Patient.fsh): `identifier` 1..*, every `identifier.value` 1..1; a hospital
  patient-ID system `urn:oid:1.2.392.100495.20.3.51.` is followed by "1" and the 10-digit
  医療機関コード.
* JP_Observation_VitalSigns / _BodyMeasurement: `category` 1..*, `subject` 1..1 and only a
  Patient, `effective[x]` only dateTime or Period; BodyMeasurement's first category is
  JP_SimpleObservationCategory_CS#body-measurement.
* JP_Observation_LabResult: category JP_SimpleObservationCategory_CS#laboratory, `code.coding`
  1..*, `code.text` 1..1, `subject` 1..1 (Patient), `effective[x]` 1..1 (dateTime, Period or
  Timing), `value[x]` only Quantity, CodeableConcept or string, `specimen` 1..*.
* JP_Condition (JP_Condition.fsh, 2024-11-18) and JP_Procedure (JP_Procedure.fsh): `subject`
  only Reference(JP_Patient), where the base resource also allows a Group.
* JP_MedicationDispense (JP_MedicationDispense.fsh with JP_MedicationDispenseBase, 2023-06-26):
  `identifier` slices rpNumber 1..1 (system urn:oid:1.2.392.100495.20.3.81; the 1.3 drafts'
  http://jpfhir.jp/fhir/core/mhlw/IdSystem/Medication-RPGroupNumber is accepted too) and
  orderInRp 1..1 (urn:oid:1.2.392.100495.20.3.82), each with a value; `medication[x]` only
  CodeableConcept; `subject` 1..1, a Patient; `quantity` 1..1 as JP_MedicationSimpleQuantity
  (JP_MedicationQuantity.fsh: `value` 1..1, `code` 1..1); `whenHandedOver` 1..1.
* JP_Immunization (JP_Immunization.fsh, 2025-07-04): `doseQuantity` as
  JP_MedicationSimpleQuantity; its extensions dueDateOfNextDose, manufacturedDate and
  certificatedDate at most once each.
* JP_Organization (JP_Organization.fsh, 2024-11-18): the extensions prefectureNo,
  organizationCategory and organizationNo at most once each.
* Every JP Core CodeSystem coding the server knows must use a code of that system
  (JP_SimpleObservationCategory_CS, JP_ConditionDiseaseOutcomeReceipt_CS).
* JP_Encounter (JP_Encounter.fsh, 2024-12-30), JP_Coverage (JP_Coverage.fsh, 2024-11-18):
  reference targets narrowed to the JP Core profiles of the types the base resource allows,
  which validation.py checks, and open identifier slices with fixed systems, which constrain
  nothing else. JP_RelatedPerson and JP_Consent (JP_RelatedPerson_dummy.fsh,
  JP_Consent_dummy.fsh, 2024-11-18) are provisional profiles ("暫定プロファイル") of the base
  resource with no constraint of their own."""

from __future__ import annotations

import re
from typing import Any

from phr_server.issues import invariant_issue as _issue

JP_CORE = "http://jpfhir.jp/fhir/core/StructureDefinition/"
JP_CORE_VERSION = "1.2.0"
JP_OBS_CATEGORY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"

PATIENT = JP_CORE + "JP_Patient"
OBS_COMMON = JP_CORE + "JP_Observation_Common"
OBS_VITAL = JP_CORE + "JP_Observation_VitalSigns"
OBS_BODY = JP_CORE + "JP_Observation_BodyMeasurement"
OBS_LAB = JP_CORE + "JP_Observation_LabResult"

# type → the JP Core profiles the server checks, the base one first
SUPPORTED: dict[str, list[str]] = {
    "Patient": [PATIENT],
    "RelatedPerson": [JP_CORE + "JP_RelatedPerson"],
    "Observation": [OBS_COMMON, OBS_VITAL, OBS_BODY, OBS_LAB],
    "Immunization": [JP_CORE + "JP_Immunization"],
    "Encounter": [JP_CORE + "JP_Encounter"],
    "Condition": [JP_CORE + "JP_Condition"],
    "Procedure": [JP_CORE + "JP_Procedure"],
    "MedicationDispense": [JP_CORE + "JP_MedicationDispense"],
    "Coverage": [JP_CORE + "JP_Coverage"],
    "Organization": [JP_CORE + "JP_Organization"],
    "Consent": [JP_CORE + "JP_Consent"],
}

# JP Core code systems whose codes are checked wherever a coding uses them
JP_CODES: dict[str, set[str]] = {
    JP_OBS_CATEGORY: {
        "social-history",
        "vital-signs",
        "body-measurement",
        "imaging",
        "laboratory",
        "procedure",
        "survey",
        "exam",
        "therapy",
        "activity",
    },
    "http://jpfhir.jp/fhir/core/CodeSystem/JP_ConditionDiseaseOutcomeReceipt_CS": {
        "1",
        "2",
        "3",
        "4",
    },
}
HOSPITAL_PATIENT_ID = "urn:oid:1.2.392.100495.20.3.51."
HOSPITAL_PATIENT_ID_RE = re.compile(r"^urn:oid:1\.2\.392\.100495\.20\.3\.51\.1\d{10}$")


def declared(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


# type → the profile named when a resource declares none (see the module docstring)
DEFAULT: dict[str, str] = {t: ps[0] for t, ps in SUPPORTED.items() if t != "MedicationDispense"}


def profiles_for(resource: dict[str, Any]) -> list[str]:
    """The profiles `resource` is checked against and named with: those it declares, or its
    type's default JP Core profile."""
    default = DEFAULT.get(str(resource.get("resourceType")))
    return declared(resource) or ([default] if default else [])


def stamp(resource: dict[str, Any]) -> None:
    """Name the checked profiles in `meta.profile` (after `check` found nothing wrong)."""
    profiles = profiles_for(resource)
    if profiles and declared(resource) != profiles:
        resource["meta"] = {**(resource.get("meta") or {}), "profile": profiles}


def check(resource: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """Problems of `resource` against the profiles it is named with, as OperationOutcome issues
    whose expressions start with `base` (e.g. `Bundle.entry[2].resource`)."""
    rtype = str(resource.get("resourceType"))
    issues: list[dict[str, Any]] = []
    known = SUPPORTED.get(rtype, [])
    for i, url in enumerate(declared(resource)):
        if url not in known:
            where = f"{base}.meta.profile[{i}]"
            issues.append(
                _issue(
                    where,
                    f"{where}: {url} is not a profile this server checks for {rtype}"
                    + (f" (it checks {', '.join(known)})" if known else ""),
                    "not-supported",
                )
            )
    for url in profiles_for(resource):
        rule = RULES.get(url)
        if rule is not None and url in known:
            issues.extend(rule(resource, base))
    if not _jp_codes_fine(resource):  # paths are built only where a code is wrong
        issues.extend(_jp_codes(resource, base))
    return issues


# --- the rules -------------------------------------------------------------------------------


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _patient(res: dict[str, Any], base: str) -> list[dict[str, Any]]:
    out = []
    idents = res.get("identifier") or []
    if not idents:
        out.append(_issue(f"{base}.identifier", "JP_Patient: identifier is required (1..*)"))
    for i, ident in enumerate(idents):
        where = f"{base}.identifier[{i}]"
        if not ident.get("value"):
            out.append(_issue(f"{where}.value", f"JP_Patient: {where}.value is required"))
        system = ident.get("system") or ""
        if system.startswith(HOSPITAL_PATIENT_ID) and not HOSPITAL_PATIENT_ID_RE.match(system):
            out.append(
                _issue(
                    f"{where}.system",
                    f"JP_Patient: {where}.system must be {HOSPITAL_PATIENT_ID}1 followed by "
                    "the 10-digit 医療機関コード",
                )
            )
    return out


def _subject_patient(res: dict[str, Any], base: str, name: str) -> list[dict[str, Any]]:
    subject = res.get("subject")
    if not isinstance(subject, dict) or not subject.get("reference"):
        return [_issue(f"{base}.subject", f"{name}: subject is required (1..1)")]
    ref = subject["reference"]
    if not ref.startswith(("Patient/", "urn:uuid:")):
        return [_issue(f"{base}.subject", f"{name}: subject must reference a Patient (JP_Patient)")]
    return []


def _effective(
    res: dict[str, Any], base: str, name: str, allowed: tuple[str, ...], required: bool
) -> list[dict[str, Any]]:
    present = [k for k in res if k.startswith("effective")]
    out = []
    for k in present:
        if k not in allowed:
            out.append(
                _issue(f"{base}.{k}", f"{name}: effective[x] may only be {', '.join(allowed)}")
            )
    if required and not present:
        out.append(_issue(f"{base}.effective[x]", f"{name}: effective[x] is required"))
    return out


def _has_category(res: dict[str, Any], code: str, first: bool) -> bool:
    cats = res.get("category") or []
    for cat in cats[:1] if first else cats:
        for c in cat.get("coding") or []:
            if c.get("system") == JP_OBS_CATEGORY and c.get("code") == code:
                return True
    return False


def _measurement(res: dict[str, Any], base: str, url: str) -> list[dict[str, Any]]:
    name = _name(url)
    out = []
    if not res.get("category"):
        out.append(_issue(f"{base}.category", f"{name}: category is required (1..*)"))
    elif url == OBS_BODY and not _has_category(res, "body-measurement", first=True):
        out.append(
            _issue(
                f"{base}.category[0]",
                f"{name}: the first category must be {JP_OBS_CATEGORY}#body-measurement",
            )
        )
    out += _subject_patient(res, base, name)
    out += _effective(res, base, name, ("effectiveDateTime", "effectivePeriod"), False)
    return out


def _lab(res: dict[str, Any], base: str, url: str) -> list[dict[str, Any]]:
    name = _name(url)
    out = []
    if not _has_category(res, "laboratory", first=False):
        out.append(
            _issue(
                f"{base}.category", f"{name}: a category {JP_OBS_CATEGORY}#laboratory is required"
            )
        )
    code = res.get("code") or {}
    if not code.get("coding"):
        out.append(_issue(f"{base}.code.coding", f"{name}: code.coding is required (1..*)"))
    if not code.get("text"):
        out.append(_issue(f"{base}.code.text", f"{name}: code.text is required (1..1)"))
    out += _subject_patient(res, base, name)
    allowed = ("effectiveDateTime", "effectivePeriod", "effectiveTiming")
    out += _effective(res, base, name, allowed, True)
    for k in res:
        if k.startswith("value") and k not in (
            "valueQuantity",
            "valueCodeableConcept",
            "valueString",
        ):
            out.append(
                _issue(
                    f"{base}.{k}",
                    f"{name}: value[x] may only be Quantity, CodeableConcept or string",
                )
            )
    if not res.get("specimen"):
        out.append(_issue(f"{base}.specimen", f"{name}: specimen is required (1..1)"))
    return out


def _patient_subject(res: dict[str, Any], base: str, url: str) -> list[dict[str, Any]]:
    ref = (res.get("subject") or {}).get("reference")
    if isinstance(ref, str) and not ref.startswith(("Patient/", "urn:uuid:")):
        return [
            _issue(
                f"{base}.subject", f"{_name(url)}: subject must reference a Patient (JP_Patient)"
            )
        ]
    return []


RP_NUMBER = (
    "urn:oid:1.2.392.100495.20.3.81",
    "http://jpfhir.jp/fhir/core/mhlw/IdSystem/Medication-RPGroupNumber",
)
ORDER_IN_RP = "urn:oid:1.2.392.100495.20.3.82"


def _simple_quantity(q: Any, where: str, name: str) -> list[dict[str, Any]]:
    """JP_MedicationSimpleQuantity: value and unit code required."""
    if not isinstance(q, dict):
        return []
    return [
        _issue(f"{where}.{k}", f"{name}: {where}.{k} is required (JP_MedicationSimpleQuantity)")
        for k in ("value", "code")
        if k not in q
    ]


def _medication_dispense(res: dict[str, Any], base: str) -> list[dict[str, Any]]:
    name = "JP_MedicationDispense"
    out = []
    idents = res.get("identifier") or []
    for systems, slice_name in ((RP_NUMBER, "rpNumber"), ((ORDER_IN_RP,), "orderInRp")):
        found = [i for i in idents if i.get("system") in systems]
        if len(found) != 1 or not found[0].get("value"):
            out.append(
                _issue(
                    f"{base}.identifier",
                    f"{name}: one identifier {slice_name} ({systems[0]}) with a value is required",
                    "required",
                )
            )
    if "medicationCodeableConcept" not in res:
        out.append(
            _issue(f"{base}.medication[x]", f"{name}: medication[x] must be a CodeableConcept")
        )
    if not (res.get("subject") or {}).get("reference"):
        out.append(_issue(f"{base}.subject", f"{name}: subject is required (1..1)", "required"))
    out += _patient_subject(res, base, JP_CORE + name)
    if "quantity" not in res:
        out.append(_issue(f"{base}.quantity", f"{name}: quantity is required (1..1)", "required"))
    out += _simple_quantity(res.get("quantity"), f"{base}.quantity", name)
    if "whenHandedOver" not in res:
        out.append(
            _issue(f"{base}.whenHandedOver", f"{name}: whenHandedOver is required", "required")
        )
    return out


def _at_most_once(
    res: dict[str, Any], base: str, name: str, urls: list[str]
) -> list[dict[str, Any]]:
    out = []
    for url in urls:
        n = sum(1 for e in res.get("extension") or [] if e.get("url") == url)
        if n > 1:
            out.append(_issue(f"{base}.extension", f"{name}: the extension {url} at most once"))
    return out


JP_EXT = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/"


def _immunization(res: dict[str, Any], base: str) -> list[dict[str, Any]]:
    name = "JP_Immunization"
    out = _simple_quantity(res.get("doseQuantity"), f"{base}.doseQuantity", name)
    exts = ["DueDateOfNextDose", "ManufacturedDate", "CertificatedDate"]
    return out + _at_most_once(res, base, name, [f"{JP_EXT}JP_Immunization_{e}" for e in exts])


def _organization(res: dict[str, Any], base: str) -> list[dict[str, Any]]:
    exts = ["PrefectureNo", "InsuranceOrganizationCategory", "InsuranceOrganizationNo"]
    urls = [f"{JP_EXT}JP_Organization_{e}" for e in exts]
    return _at_most_once(res, base, "JP_Organization", urls)


RULES = {
    PATIENT: _patient,
    JP_CORE + "JP_Condition": lambda r, b: _patient_subject(r, b, JP_CORE + "JP_Condition"),
    JP_CORE + "JP_Procedure": lambda r, b: _patient_subject(r, b, JP_CORE + "JP_Procedure"),
    JP_CORE + "JP_MedicationDispense": _medication_dispense,
    JP_CORE + "JP_Immunization": _immunization,
    JP_CORE + "JP_Organization": _organization,
    OBS_VITAL: lambda r, b: _measurement(r, b, OBS_VITAL),
    OBS_BODY: lambda r, b: _measurement(r, b, OBS_BODY),
    OBS_LAB: lambda r, b: _lab(r, b, OBS_LAB),
}


def _jp_codes_fine(node: Any) -> bool:
    """No coding below `node` uses a JP Core code system with a code outside it: the quick
    pass of `_jp_codes`, without the paths."""
    if isinstance(node, dict):
        system = node.get("system")
        if system in JP_CODES and "code" in node and node["code"] not in JP_CODES[system]:
            return False
        return all(_jp_codes_fine(v) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return all(_jp_codes_fine(v) for v in node if isinstance(v, dict | list))
    return True


def _jp_codes(node: Any, path: str) -> list[dict[str, Any]]:
    """Codings in a JP Core code system the server knows must use one of its codes."""
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        system = node.get("system")
        if system in JP_CODES and "code" in node and node["code"] not in JP_CODES[system]:
            out.append(
                _issue(
                    f"{path}.code",
                    f"{path}.code: {node['code']!r} is not a code of {system}",
                    "code-invalid",
                )
            )
        for k, v in node.items():
            if isinstance(v, dict | list):
                out += _jp_codes(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _jp_codes(v, f"{path}[{i}]")
    return out
