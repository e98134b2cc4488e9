"""FHIR R4 rules an independent validator applies and fhir.resources does not: the JSON form
(ele-1), primitive formats, the invariants of data types and of the resource types we accept,
and codes of the code systems the R4 specification defines completely.

Each function returns OperationOutcome issues; validation.py calls them once per resource
(resource rules) or per data type object its model walk meets (data type rules). All are
checks of the raw JSON, without building anything, so they add little to a write.

Found missing by tests/phr_server/test_independent_validator.py, which runs @medplum/core and
the official R4 JSON schema over what the server stores and serves, and checks that every
mutant of real resources those flag is refused here too."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from phr_server.dates import value_range
from phr_server.issues import invariant_issue as _issue

Issues = list[dict[str, Any]]

CODE_SYSTEMS_FILE = Path(__file__).with_name("fhir_r4_code_systems.json")
CODE_RE = re.compile(r"^[^\s]+(\s[^\s]+)*$")
WHITESPACE = re.compile(r"\s")


# --- the JSON form ----------------------------------------------------------------------------


def json_form(node: Any, path: str, out: Issues) -> None:
    """ele-1 and the JSON representation: no null, no empty string, object or array anywhere
    (an element is present with a value or not at all). A quick pass first; the paths are
    built only for a resource that has such a problem."""
    if _well_formed(node):
        return
    _json_form(node, path, out)


def _well_formed(node: Any) -> bool:
    if isinstance(node, dict):
        if not node:
            return False
        values: Any = node.values()
    elif isinstance(node, list):
        if not node:
            return False
        values = node
    else:
        return node != ""
    for v in values:
        if v is None or v == "":
            return False
        if (type(v) is dict or type(v) is list) and not _well_formed(v):
            return False
    return True


def _json_form(node: Any, path: str, out: Issues) -> None:
    if isinstance(node, dict):
        if not node:
            out.append(_issue(path, f"{path} is an empty object (ele-1)"))
        for k, v in node.items():
            if v is None:
                out.append(_issue(f"{path}.{k}", f"{path}.{k} is null; leave it out", "structure"))
            elif isinstance(v, dict | list | str):
                _json_form(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        if not node:
            out.append(_issue(path, f"{path} is an empty array; leave it out", "structure"))
        for i, v in enumerate(node):
            if v is None:
                out.append(_issue(f"{path}[{i}]", f"{path}[{i}] is null", "structure"))
            elif isinstance(v, dict | list | str):
                _json_form(v, f"{path}[{i}]", out)
    elif node == "":
        out.append(_issue(path, f"{path} is an empty string; leave it out", "value"))


# --- primitive formats, from the model's field types -------------------------------------------


@cache
def _formats(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(uri-like keys, code keys) of a fhir.resources model class, from its annotations."""
    uris, codes = [], []
    for name, info in model.model_fields.items():
        text = repr(info.annotation)
        key = info.alias or name
        if any(t in text for t in ("Uri()", "Url()", "Canonical()", "Oid()", "Uuid()")):
            uris.append(key)
        elif "Code()" in text:
            codes.append(key)
    return tuple(uris), tuple(codes)


def primitive_formats(obj: Any, raw: dict[str, Any], path: str, out: Issues) -> None:
    """uri, url, canonical, oid and uuid values hold no whitespace; a code has no leading,
    trailing or doubled whitespace (R4 primitive type regexes)."""
    model: type[BaseModel] = type(obj)
    uris, codes = _formats(model)
    for key in uris:
        v = raw.get(key)
        if v is None:
            continue
        for item in v if isinstance(v, list) else (v,):
            if isinstance(item, str) and WHITESPACE.search(item):
                p = f"{path}.{key}"
                out.append(_issue(p, f"{p} must be a URI without whitespace", "value"))
    for key in codes:
        v = raw.get(key)
        if v is None:
            continue
        for item in v if isinstance(v, list) else (v,):
            if isinstance(item, str) and item and not CODE_RE.match(item):
                p = f"{path}.{key}"
                out.append(_issue(p, f"{p}: no leading, trailing or double spaces", "value"))


# --- data types ---------------------------------------------------------------------------------


def _value_keys(raw: dict[str, Any]) -> list[str]:
    return [k for k in raw if k.startswith("value") and len(k) > 5 and k[5].isupper()]


def _extension(raw: dict[str, Any], path: str, out: Issues) -> None:
    if bool(raw.get("extension")) == bool(_value_keys(raw)):
        out.append(_issue(path, f"ext-1: {path} needs either extensions or a value[x], not both"))


def _contact_point(raw: dict[str, Any], path: str, out: Issues) -> None:
    if "value" in raw and "system" not in raw:
        out.append(_issue(f"{path}.system", f"cpt-2: {path} has a value but no system"))


def _attachment(raw: dict[str, Any], path: str, out: Issues) -> None:
    if "data" in raw and "contentType" not in raw:
        out.append(_issue(f"{path}.contentType", f"att-1: {path} has data but no contentType"))


def _range(raw: dict[str, Any], path: str, out: Issues) -> None:
    low, high = (raw.get(k) or {} for k in ("low", "high"))
    lv, hv = low.get("value"), high.get("value")
    if isinstance(lv, int | float) and isinstance(hv, int | float) and lv > hv:
        out.append(_issue(path, f"rng-2: {path}.low is above its high"))


def _coding(raw: dict[str, Any], path: str, out: Issues) -> None:
    system = raw.get("system")
    codes = code_systems().get(system) if isinstance(system, str) else None
    code = raw.get("code")
    if codes is not None and isinstance(code, str) and code not in codes:
        out.append(
            _issue(
                f"{path}.code",
                f"{path}.code: {code!r} is not a code of {raw['system']}",
                "code-invalid",
            )
        )


DATATYPES: dict[str, Callable[[dict[str, Any], str, Issues], None]] = {
    "Extension": _extension,
    "ContactPoint": _contact_point,
    "Attachment": _attachment,
    "Range": _range,
    "Coding": _coding,
}


@cache
def code_systems() -> dict[str, frozenset[str]]:
    """Every code system the R4 definitions define completely (fhir_r4_code_systems.json,
    generated by tests/fhir_validator/codesystems.mjs): a coding in one must use its codes."""
    data = json.loads(CODE_SYSTEMS_FILE.read_text(encoding="utf-8"))
    return {url: frozenset(codes) for url, codes in data.items()}


# --- resource types -----------------------------------------------------------------------------

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _codes(concept: Any, system: str) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {c.get("code") for c in concept.get("coding") or [] if c.get("system") == system}


def _condition(r: dict[str, Any], base: str, out: Issues) -> None:
    clinical = _codes(r.get("clinicalStatus"), CLINICAL)
    abated = any(k.startswith("abatement") for k in r) and r.get("clinicalStatus")
    if abated and not clinical & {"inactive", "resolved", "remission"}:
        out.append(
            _issue(
                f"{base}.clinicalStatus",
                "con-4: with an abatement the clinicalStatus must be inactive, resolved or "
                "remission",
            )
        )
    if "entered-in-error" in _codes(r.get("verificationStatus"), VER_STATUS) and r.get(
        "clinicalStatus"
    ):
        out.append(
            _issue(
                f"{base}.clinicalStatus",
                "con-5: an entered-in-error Condition has no clinicalStatus",
            )
        )
    for i, stage in enumerate(r.get("stage") or []):
        if not (stage.get("summary") or stage.get("assessment")):
            out.append(_issue(f"{base}.stage[{i}]", "con-1: a stage needs a summary or assessment"))
    for i, ev in enumerate(r.get("evidence") or []):
        if not (ev.get("code") or ev.get("detail")):
            out.append(_issue(f"{base}.evidence[{i}]", "con-2: evidence needs a code or detail"))


def _consent(r: dict[str, Any], base: str, out: Issues) -> None:
    if not (r.get("policy") or r.get("policyRule")):
        out.append(_issue(f"{base}.policy", "ppc-1: a Consent needs a policy or a policyRule"))


def _immunization(r: dict[str, Any], base: str, out: Issues) -> None:
    for i, ed in enumerate(r.get("education") or []):
        if not (ed.get("documentType") or ed.get("reference")):
            out.append(_issue(f"{base}.education[{i}]", "imm-1: needs a documentType or reference"))


def _medication_dispense(r: dict[str, Any], base: str, out: Issues) -> None:
    handed, prepared = r.get("whenHandedOver"), r.get("whenPrepared")
    h, p = value_range(handed), value_range(prepared)
    if h is not None and p is not None and h[1] <= p[0]:
        out.append(_issue(f"{base}.whenHandedOver", "mdd-1: whenHandedOver is before whenPrepared"))


def _observation(r: dict[str, Any], base: str, out: Issues) -> None:
    codes = {(c.get("system"), c.get("code")) for c in (r.get("code") or {}).get("coding") or []}
    if _value_keys(r):
        for i, comp in enumerate(r.get("component") or []):
            concept = comp.get("code") or {}
            mine = {(c.get("system"), c.get("code")) for c in concept.get("coding") or []}
            if mine & codes:
                out.append(
                    _issue(
                        f"{base}.component[{i}].code",
                        "obs-7: with a value, no component may have the Observation's own code",
                    )
                )
    for i, rr in enumerate(r.get("referenceRange") or []):
        if not (rr.get("low") or rr.get("high") or rr.get("text")):
            out.append(_issue(f"{base}.referenceRange[{i}]", "obs-3: needs a low, high or text"))


def _organization(r: dict[str, Any], base: str, out: Issues) -> None:
    if not (r.get("identifier") or r.get("name")):
        out.append(_issue(base, "org-1: an Organization needs an identifier or a name", "required"))
    for key, rule in (("address", "org-2"), ("telecom", "org-3")):
        for i, a in enumerate(r.get(key) or []):
            if a.get("use") == "home":
                out.append(
                    _issue(f"{base}.{key}[{i}].use", f"{rule}: an organization's {key} is not home")
                )


def _patient(r: dict[str, Any], base: str, out: Issues) -> None:
    for i, c in enumerate(r.get("contact") or []):
        if not any(c.get(k) for k in ("name", "telecom", "address", "organization")):
            out.append(
                _issue(
                    f"{base}.contact[{i}]",
                    "pat-1: a contact needs a name, telecom, address or organization",
                )
            )


def _audit_event(r: dict[str, Any], base: str, out: Issues) -> None:
    for i, e in enumerate(r.get("entity") or []):
        if e.get("name") and e.get("query"):
            out.append(_issue(f"{base}.entity[{i}]", "sev-1: an entity has a name or a query"))


RESOURCES: dict[str, Callable[[dict[str, Any], str, Issues], None]] = {
    "Condition": _condition,
    "Consent": _consent,
    "Immunization": _immunization,
    "MedicationDispense": _medication_dispense,
    "Observation": _observation,
    "Organization": _organization,
    "Patient": _patient,
    "AuditEvent": _audit_event,
}


def resource_rules(resource: dict[str, Any], base: str) -> Issues:
    """The JSON form and the invariants of the resource's type; contained resources are
    refused (every rule here and in profiles.py is about the resource itself, so content
    tucked into `contained` would escape them; send it as a Bundle entry)."""
    out: Issues = []
    json_form(resource, base, out)
    if "contained" in resource:
        out.append(
            _issue(
                f"{base}.contained",
                f"{base}.contained: contained resources are not accepted; send each as an entry "
                "of the transaction",
                "not-supported",
            )
        )
    rule = RESOURCES.get(str(resource.get("resourceType")))
    if rule is not None:
        rule(resource, base, out)
    return out
