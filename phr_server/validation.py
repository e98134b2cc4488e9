"""Validating resources on write: the fhir.resources R4B models for structure, types and
cardinality, then what they do not check, for every type we accept:

* codes of required bindings (Observation.status "bogus", Patient.gender "x", …);
* strings the models silently turn into numbers or booleans ("62.5" for a decimal);
* invariants: per-1 (Period start after end), qty-3 (Quantity code without system),
  obs-6 (dataAbsentReason with a value), and in invariants.py the JSON form (ele-1: no empty
  strings, objects, arrays or nulls), primitive formats (URIs, codes), the other invariants of
  data types (ext-1, cpt-2, att-1, rng-2) and of the types we accept (con-1/2/4/5, ppc-1,
  imm-1, mdd-1, obs-3/7, org-1/2/3, pat-1, sev-1), and codes of the code systems the R4
  specification defines completely;
* the R4 vital signs profiles for Observations with their LOINC codes (vital_signs.py);
* reference targets: `Observation.subject` may point at a Patient, not at an Organization;
  references are relative `Type/id`, `#contained` or, inside a transaction, an entry's
  `urn:uuid:`;
* the JP Core profiles named in `meta.profile` or implied by the type (profiles.py).

Each problem is an OperationOutcome issue whose `expression` names the element, e.g.
`Observation.status`, so a connector can point at the source row."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

from phr_server import invariants, profiles, vital_signs
from phr_server.dates import value_range
from phr_server.indexing import TYPES, unindexable_dates
from phr_server.issues import issue

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REF_RE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")


class Invalid(Exception):
    """One or more problems; `issues` are OperationOutcome issues."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(i["diagnostics"] for i in issues))
        self.issues = issues


# --- required bindings -----------------------------------------------------------------------

REQUEST_STATUS = {"draft", "active", "cancelled", "entered-in-error"}
ADMIN_GENDER = {"male", "female", "other", "unknown"}
CODES: dict[str, dict[str, set[str]]] = {
    "Patient": {
        "gender": ADMIN_GENDER,
        "link.type": {"replaced-by", "replaces", "refer", "seealso"},
    },
    "RelatedPerson": {"gender": ADMIN_GENDER},
    "Observation": {
        "status": {
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    },
    "Immunization": {"status": {"completed", "entered-in-error", "not-done"}},
    "Encounter": {
        "status": (
            enc := {
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            }
        ),
        "statusHistory.status": enc,
        "location.status": {"planned", "active", "reserved", "completed"},
    },
    "Procedure": {
        "status": {
            "preparation",
            "in-progress",
            "not-done",
            "on-hold",
            "stopped",
            "completed",
            "entered-in-error",
            "unknown",
        }
    },
    "MedicationDispense": {
        "status": {
            "preparation",
            "in-progress",
            "cancelled",
            "on-hold",
            "completed",
            "entered-in-error",
            "stopped",
            "declined",
            "unknown",
        }
    },
    "Claim": {
        "status": REQUEST_STATUS,
        "use": (use := {"claim", "preauthorization", "predetermination"}),
    },
    "ExplanationOfBenefit": {
        "status": REQUEST_STATUS,
        "use": use,
        "outcome": {"queued", "complete", "error", "partial"},
    },
    "Coverage": {"status": REQUEST_STATUS},
    "Consent": {
        "status": {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"},
        "provision.type": {"deny", "permit"},
        "provision.data.meaning": {"instance", "related", "dependents", "authoredby"},
    },
    "AuditEvent": {"action": {"C", "R", "U", "D", "E"}, "outcome": {"0", "4", "8", "12"}},
    "Organization": {},
    "Provenance": {},
}

# CodeableConcepts with a required binding: codings in the bound system must use its codes,
# and at least one coding must be from it.
CONCEPTS: dict[str, dict[str, tuple[str, set[str]]]] = {
    "Condition": {
        "clinicalStatus": (
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            {"active", "recurrence", "relapse", "inactive", "remission", "resolved"},
        ),
        "verificationStatus": (
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            {
                "unconfirmed",
                "provisional",
                "differential",
                "confirmed",
                "refuted",
                "entered-in-error",
            },
        ),
    },
}

# Required bindings of data types, wherever they occur.
DATATYPE_CODES: dict[str, dict[str, set[str]]] = {
    "Identifier": {"use": {"usual", "official", "temp", "secondary", "old"}},
    "HumanName": {"use": {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}},
    "ContactPoint": {
        "system": {"phone", "fax", "email", "pager", "url", "sms", "other"},
        "use": {"home", "work", "temp", "old", "mobile"},
    },
    "Address": {
        "use": {"home", "work", "temp", "old", "billing"},
        "type": {"postal", "physical", "both"},
    },
    "Quantity": {"comparator": {"<", "<=", ">=", ">"}},
    "Narrative": {"status": {"generated", "extensions", "additional", "empty"}},
}

# --- reference targets (FHIR R4 element definitions) ------------------------------------------

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


def _walk(obj: Any, path: str, raw: Any) -> Iterator[tuple[BaseModel, str, dict[str, Any]]]:
    """Every model instance inside `obj`, with its FHIRPath-like location and the raw JSON
    object at that place (walked alongside, for values the model rewrote)."""
    if isinstance(obj, list):
        items = raw if isinstance(raw, list) else []
        for i, item in enumerate(obj):
            yield from _walk(item, f"{path}[{i}]", items[i] if i < len(items) else None)
        return
    if not isinstance(obj, BaseModel):
        return
    here = raw if isinstance(raw, dict) else {}
    yield obj, path, here
    keys = _json_keys(type(obj))
    for name, value in obj.__dict__.items():  # the field values, in field order
        if value is None or name == "fhir_comments" or name not in keys:
            continue
        key = keys[name]
        yield from _walk(value, f"{path}.{key}", here.get(key))


@functools.cache
def _json_keys(cls: type[BaseModel]) -> dict[str, str]:
    """A model class's field names → their JSON keys (aliases), in field order. Read once per
    class: `model_fields` is a property that costs more than the walk itself."""
    return {name: info.alias or name for name, info in cls.model_fields.items()}


@functools.cache
def _json_fields(cls: type[BaseModel]) -> dict[str, tuple[int, str]]:
    """JSON key → (field position, field name) of a model class."""
    return {key: (i, name) for i, (name, key) in enumerate(_json_keys(cls).items())}


def _strip_indexes(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def _raw_values(resource: Any, dotted: str, path: str) -> Iterator[tuple[Any, str]]:
    head, _, rest = dotted.partition(".")
    if not isinstance(resource, dict) or head not in resource:
        return
    value = resource[head]
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    for i, item in items:
        p = f"{path}.{head}" + (f"[{i}]" if i is not None else "")
        if rest:
            yield from _raw_values(item, rest, p)
        else:
            yield item, p


def _coercions(raw: Any, dumped: Any, path: str, out: list[dict[str, Any]]) -> None:
    """Where the model turned a JSON string into a number or boolean (or back)."""
    if isinstance(raw, dict) and isinstance(dumped, dict):
        for k, v in raw.items():
            if k in dumped:
                _coercions(v, dumped[k], f"{path}.{k}", out)
    elif isinstance(raw, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(raw, dumped, strict=False)):
            _coercions(a, b, f"{path}[{i}]", out)
    elif isinstance(raw, str) and isinstance(dumped, bool | int | float):
        kind = "boolean" if isinstance(dumped, bool) else "number"
        out.append(issue(path, f"{path} must be a JSON {kind}, not the string {raw!r}"))
    elif isinstance(raw, bool) != isinstance(dumped, bool) or (
        isinstance(raw, int | float) and isinstance(dumped, str)
    ):
        out.append(issue(path, f"{path} has the wrong JSON type"))


def _primitive_types(
    obj: BaseModel, raw: dict[str, Any], path: str, out: list[dict[str, Any]]
) -> None:
    """_coercions for one model object, comparing its primitive values with the raw JSON at
    the same place: the same findings as dumping the whole model and walking both trees,
    without the dump (which cost about half of validating a resource)."""
    fields = _json_fields(type(obj))
    present = sorted(fields[k] + (k,) for k in raw if k in fields)  # keys given, field order
    for _, name, key in present:
        value = getattr(obj, name, None)
        if value is None or isinstance(value, BaseModel):
            continue
        if isinstance(value, list):
            items = raw[key] if isinstance(raw[key], list) else []
            for i, (a, b) in enumerate(zip(items, value, strict=False)):
                if not isinstance(b, BaseModel):
                    _coercions(a, _json_kind(b), f"{path}.{key}[{i}]", out)
        else:
            _coercions(raw[key], _json_kind(value), f"{path}.{key}", out)


def _json_kind(value: Any) -> Any:
    """A primitive model value as the JSON dump would type it: booleans and numbers stay,
    everything else (dates, times, codes, Decimal-as-string forms) compares as a string."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _loc_path(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += "." + ("class" if part == "class_fhir" else part)
    return path


@functools.cache
def _model_class(rtype: str) -> type[BaseModel]:
    """fhir.resources' class for a type, looked up once (the lookup costs ~4% of a write)."""
    return get_fhir_model_class(rtype)


def validate(
    resource: Any,
    root: str | None = None,
    resolve: Callable[[str], str | None] | None = None,
) -> None:
    """Raise Invalid listing every problem of `resource`. `root` prefixes expressions (e.g.
    `Bundle.entry[3].resource`); `resolve` maps a `urn:uuid:` reference to its entry's type."""
    if not isinstance(resource, dict):
        raise Invalid([issue(root or "resource", "a resource must be a JSON object")])
    rtype = resource.get("resourceType")
    base = root or str(rtype)
    if rtype not in TYPES:
        raise Invalid(
            [issue(f"{base}.resourceType", f"resource type {rtype!r} is not supported here")]
        )
    if "id" in resource and not (isinstance(resource["id"], str) and ID_RE.match(resource["id"])):
        raise Invalid([issue(f"{base}.id", "id must be 1-64 letters, digits, '-' or '.'")])
    try:
        model = _model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        refused = []
        for err in exc.errors():
            where = _loc_path(base, err["loc"])
            refused.append(issue(where, f"{where}: {err['msg']}", "structure"))
        raise Invalid(refused) from None

    issues: list[dict[str, Any]] = []

    for dotted, allowed in CODES.get(rtype, {}).items():
        for value, p in _raw_values(resource, dotted, base):
            if value not in allowed:
                issues.append(
                    issue(
                        p,
                        f"{p}: {value!r} is not one of {', '.join(sorted(allowed))}",
                        "code-invalid",
                    )
                )
    for dotted, (system, allowed) in CONCEPTS.get(rtype, {}).items():
        for value, p in _raw_values(resource, dotted, base):
            codings = value.get("coding") or []
            ours = [c for c in codings if c.get("system") == system]
            if not ours:
                issues.append(issue(p, f"{p} needs a coding from {system}", "code-invalid"))
            for c in ours:
                if c.get("code") not in allowed:
                    issues.append(
                        issue(
                            p, f"{p}: {c.get('code')!r} is not a code of {system}", "code-invalid"
                        )
                    )

    if (
        rtype == "Observation"
        and resource.get("dataAbsentReason")
        and any(k.startswith("value") for k in resource)
    ):
        issues.append(issue(f"{base}.dataAbsentReason", "obs-6: dataAbsentReason with a value"))

    issues.extend(invariants.resource_rules(resource, base))
    for obj, p, raw_here in _walk(model, base, resource):
        kind = type(obj).__name__
        _primitive_types(obj, raw_here, p, issues)
        invariants.primitive_formats(obj, raw_here, p, issues)
        if (datatype_rule := invariants.DATATYPES.get(kind)) is not None:
            datatype_rule(raw_here, p, issues)
        for element, allowed in DATATYPE_CODES.get(kind, {}).items():
            value = getattr(obj, element, None)
            if value is not None and value not in allowed:
                issues.append(
                    issue(
                        f"{p}.{element}", f"{p}.{element}: {value!r} is not allowed", "code-invalid"
                    )
                )
        if (
            kind == "Period"
            and getattr(obj, "start", None) is not None
            and getattr(obj, "end", None) is not None
        ):
            s = raw_here.get("start")
            e = raw_here.get("end")
            rs, re_ = value_range(s), value_range(e)
            if rs is not None and re_ is not None and rs[0] >= re_[1]:
                issues.append(issue(p, f"per-1: {p}.start is after its end"))
        if (
            kind in ("Quantity", "Age", "Duration", "Distance", "Count", "Money")
            and getattr(obj, "code", None) is not None
            and getattr(obj, "system", None) is None
        ):
            issues.append(issue(f"{p}.system", f"qty-3: {p} has a code but no system"))
        reference = getattr(obj, "reference", None) if kind == "Reference" else None
        if reference is not None:
            element = rtype + _strip_indexes(p[len(base) :])
            issues.extend(_check_reference(reference, p, element, resolve))
    for where in unindexable_dates(resource):  # never stored unsearchable, never a 500
        issues.append(issue(f"{base}.{where}", f"{base}.{where}: not a date the index can hold"))
    issues.extend(vital_signs.check(resource, base))  # the R4 vital signs profiles
    issues.extend(profiles.check(resource, base))  # JP Core (profiles.py)
    if issues:
        raise Invalid(issues)


def _check_reference(
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
