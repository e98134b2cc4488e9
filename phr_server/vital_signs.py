"""The FHIR R4 vital signs profiles (observation-vitalsigns): an Observation coded with one of
their LOINC codes SHALL conform to the profile, whether or not it names it, and independent
validators check that. From the R4 StructureDefinitions vitalsigns, bodyweight, bodyheight,
headcircum, bp, … (profiles-others.json of the R4 definitions):

* a category observation-category#vital-signs, subject 1..1 (a Patient), effective[x] 1..1 as
  dateTime or Period (vs-1: a dateTime at least to the day);
* vs-2: a value, a dataAbsentReason, components or members;
* a valueQuantity has value, unit, system http://unitsofmeasure.org and a code from the
  profile's units (kg, g or [lb_av] for a body weight, cm or [in_i] for lengths, …);
* blood pressure (85354-9): one systolic (8480-6) and one diastolic (8462-4) component, each
  with a valueQuantity in mm[Hg] or a dataAbsentReason (vs-3)."""

from __future__ import annotations

from typing import Any

from phr_server.issues import invariant_issue as _issue

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# LOINC code → (profile name, the UCUM codes its valueQuantity may use; None: no value)
PROFILES: dict[str, tuple[str, frozenset[str] | None]] = {
    "29463-7": ("bodyweight", frozenset({"kg", "g", "[lb_av]"})),
    "8302-2": ("bodyheight", frozenset({"cm", "[in_i]"})),
    "9843-4": ("headcircum", frozenset({"cm", "[in_i]"})),
    "8310-5": ("bodytemp", frozenset({"Cel", "[degF]"})),
    "8867-4": ("heartrate", frozenset({"/min"})),
    "9279-1": ("resprate", frozenset({"/min"})),
    "2708-6": ("oxygensat", frozenset({"%"})),
    "39156-5": ("bmi", frozenset({"kg/m2"})),
    "85354-9": ("bp", None),
    "85353-1": ("vitalspanel", None),
}
BP_COMPONENTS = {"8480-6": "systolic", "8462-4": "diastolic"}
MM_HG = frozenset({"mm[Hg]"})


def profile_of(resource: dict[str, Any]) -> tuple[str, frozenset[str] | None] | None:
    for c in (resource.get("code") or {}).get("coding") or []:
        if c.get("system") == LOINC and c.get("code") in PROFILES:
            return PROFILES[c["code"]]
    return None


def check(resource: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """Problems of an Observation against the R4 vital signs profile its code calls for."""
    if resource.get("resourceType") != "Observation":
        return []
    found = profile_of(resource)
    if found is None:
        return []
    name, units = found
    where = f"R4 vital signs profile {name}"
    out: list[dict[str, Any]] = []
    cats = [c for cat in resource.get("category") or [] for c in cat.get("coding") or []]
    if not any(c.get("system") == CATEGORY and c.get("code") == "vital-signs" for c in cats):
        out.append(
            _issue(f"{base}.category", f"{where}: needs the category {CATEGORY}#vital-signs")
        )
    subject = (resource.get("subject") or {}).get("reference")
    if not isinstance(subject, str) or not subject.startswith(("Patient/", "urn:uuid:")):
        out.append(_issue(f"{base}.subject", f"{where}: subject must reference a Patient"))
    effective = [k for k in resource if k.startswith("effective")]
    if not effective or effective[0] not in ("effectiveDateTime", "effectivePeriod"):
        out.append(
            _issue(f"{base}.effective[x]", f"{where}: effective[x] is required, dateTime or Period")
        )
    elif effective[0] == "effectiveDateTime" and len(str(resource[effective[0]])) < 10:
        out.append(_issue(f"{base}.effectiveDateTime", f"vs-1: {where}: at least a full date"))
    values = [k for k in resource if k.startswith("value") and len(k) > 5]
    has = values or resource.get("dataAbsentReason") or resource.get("component")
    if not (has or resource.get("hasMember")):
        out.append(_issue(base, f"vs-2: {where}: needs a value, dataAbsentReason or components"))
    if units is not None:
        for k in values:
            if k != "valueQuantity":
                out.append(_issue(f"{base}.{k}", f"{where}: the value must be a Quantity"))
            else:
                out += _quantity(resource[k], f"{base}.{k}", units, where)
    if name == "bp":
        out += _blood_pressure(resource, base, where)
    return out


def _quantity(q: Any, path: str, units: frozenset[str], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(q, dict):
        return out
    for key in ("value", "unit", "system", "code"):
        if key not in q:
            out.append(_issue(f"{path}.{key}", f"{where}: {path}.{key} is required", "required"))
    if "system" in q and q["system"] != UCUM:
        out.append(_issue(f"{path}.system", f"{where}: {path}.system must be {UCUM}"))
    if "code" in q and q["code"] not in units:
        out.append(
            _issue(
                f"{path}.code",
                f"{where}: {path}.code must be one of {', '.join(sorted(units))}",
                "code-invalid",
            )
        )
    return out


def _blood_pressure(resource: dict[str, Any], base: str, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen = dict.fromkeys(BP_COMPONENTS, 0)
    for i, comp in enumerate(resource.get("component") or []):
        path = f"{base}.component[{i}]"
        codes = [
            c.get("code")
            for c in (comp.get("code") or {}).get("coding") or []
            if c.get("system") == LOINC and c.get("code") in BP_COMPONENTS
        ]
        for code in codes:
            seen[code] += 1
        if not any(k.startswith("value") for k in comp) and not comp.get("dataAbsentReason"):
            out.append(_issue(path, f"vs-3: {where}: a component needs a value or absent reason"))
        if codes and "valueQuantity" in comp:
            out += _quantity(comp["valueQuantity"], f"{path}.valueQuantity", MM_HG, where)
    for code, n in seen.items():
        if n != 1:
            out.append(
                _issue(
                    f"{base}.component",
                    f"{where}: needs exactly one {BP_COMPONENTS[code]} component (LOINC {code}), "
                    f"found {n}",
                    "required",
                )
            )
    return out
