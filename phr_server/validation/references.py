"""References: relative `Type/id`, an entry's `urn:uuid:` inside a transaction, or absolute;
never `#contained`; and to a type the element may point at (FHIR R4 element definitions):
`Observation.subject` may be a Patient, not an Organization."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from phr_server.issues import issue

REF_RE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")

_PRACT = {"Practitioner", "PractitionerRole"}
_ACTOR = _PRACT | {"Organization", "Patient", "RelatedPerson", "Device"}
TARGETS: dict[str, set[str]] = {
    "Patient.managingOrganization": {"Organization"},
    "Patient.generalPractitioner": _PRACT | {"Organization"},
    "Patient.link.other": {"Patient", "RelatedPerson"},
    "RelatedPerson.patient": {"Patient"},
    "Observation.subject": {"Patient", "Group", "Device", "Location"},
    "Observation.encounter": {"Encounter"},
    "Observation.performer": _PRACT | {"Organization", "CareTeam", "Patient", "RelatedPerson"},
    "Observation.hasMember": {"Observation", "QuestionnaireResponse", "MolecularSequence"},
    "Observation.derivedFrom": {
        "DocumentReference",
        "ImagingStudy",
        "Media",
        "QuestionnaireResponse",
        "Observation",
        "MolecularSequence",
    },
    "Observation.specimen": {"Specimen"},
    "Observation.device": {"Device", "DeviceMetric"},
    "Immunization.patient": {"Patient"},
    "Immunization.encounter": {"Encounter"},
    "Immunization.location": {"Location"},
    "Immunization.manufacturer": {"Organization"},
    "Immunization.performer.actor": _PRACT | {"Organization"},
    "Immunization.reasonReference": {"Condition", "Observation", "DiagnosticReport"},
    "Immunization.reaction.detail": {"Observation"},
    "Encounter.subject": {"Patient", "Group"},
    "Encounter.serviceProvider": {"Organization"},
    "Encounter.partOf": {"Encounter"},
    "Encounter.participant.individual": _PRACT | {"RelatedPerson"},
    "Encounter.diagnosis.condition": {"Condition", "Procedure"},
    "Encounter.location.location": {"Location"},
    "Encounter.episodeOfCare": {"EpisodeOfCare"},
    "Condition.subject": {"Patient", "Group"},
    "Condition.encounter": {"Encounter"},
    "Condition.recorder": _PRACT | {"Patient", "RelatedPerson"},
    "Condition.asserter": _PRACT | {"Patient", "RelatedPerson"},
    "Procedure.subject": {"Patient", "Group"},
    "Procedure.encounter": {"Encounter"},
    "Procedure.performer.actor": _ACTOR,
    "Procedure.performer.onBehalfOf": {"Organization"},
    "Procedure.location": {"Location"},
    "MedicationDispense.subject": {"Patient", "Group"},
    "MedicationDispense.medicationReference": {"Medication"},
    "MedicationDispense.context": {"Encounter", "EpisodeOfCare"},
    "MedicationDispense.performer.actor": _ACTOR,
    "MedicationDispense.location": {"Location"},
    "MedicationDispense.authorizingPrescription": {"MedicationRequest"},
    "Claim.patient": {"Patient"},
    "Claim.provider": _PRACT | {"Organization"},
    "Claim.insurer": {"Organization"},
    "Claim.insurance.coverage": {"Coverage"},
    "Claim.facility": {"Location"},
    "Claim.item.encounter": {"Encounter"},
    "Claim.diagnosis.diagnosisReference": {"Condition"},
    "Claim.procedure.procedureReference": {"Procedure"},
    "ExplanationOfBenefit.patient": {"Patient"},
    "ExplanationOfBenefit.insurer": {"Organization"},
    "ExplanationOfBenefit.provider": _PRACT | {"Organization"},
    "ExplanationOfBenefit.claim": {"Claim"},
    "ExplanationOfBenefit.insurance.coverage": {"Coverage"},
    "ExplanationOfBenefit.facility": {"Location"},
    "ExplanationOfBenefit.diagnosis.diagnosisReference": {"Condition"},
    "ExplanationOfBenefit.procedure.procedureReference": {"Procedure"},
    "Coverage.beneficiary": {"Patient"},
    "Coverage.subscriber": {"Patient", "RelatedPerson"},
    "Coverage.policyHolder": {"Patient", "RelatedPerson", "Organization"},
    "Coverage.payor": {"Organization", "Patient", "RelatedPerson"},
    "Organization.partOf": {"Organization"},
    "Consent.patient": {"Patient"},
    "Consent.performer": _PRACT | {"Organization", "Patient", "RelatedPerson"},
    "Consent.organization": {"Organization"},
    "Provenance.agent.who": _ACTOR,
    "Provenance.agent.onBehalfOf": _ACTOR,
    "Provenance.location": {"Location"},
}


def strip_indexes(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def check_reference(
    ref: str, path: str, element: str, resolve: Callable[[str], str | None] | None
) -> list[dict[str, Any]]:
    target: str | None
    if ref.startswith("#"):  # ref-1: contained resources are refused (invariants.py)
        return [issue(f"{path}.reference", f"{ref} names no contained resource")]
    if ref.startswith("urn:uuid:"):
        target = resolve(ref) if resolve else None
        if target is None:
            return [issue(f"{path}.reference", f"{ref} names no entry of this Bundle")]
    elif ref.startswith(("http://", "https://")):
        return []  # an absolute reference to another server; its type is in the URL
    else:
        m = REF_RE.match(ref)
        if not m:
            return [issue(f"{path}.reference", f"{path}.reference {ref!r} is not Type/id")]
        target = m.group(1)
    allowed = TARGETS.get(element)
    if allowed is not None and target not in allowed:
        return [
            issue(
                f"{path}.reference",
                f"{element} may reference {', '.join(sorted(allowed))}, not {target}",
            )
        ]
    return []
