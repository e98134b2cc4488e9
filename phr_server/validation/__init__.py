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

One module per concern: `structure` (type, id, the models), `bindings`, `json_types`,
`references`, `elements` (what is checked at every model object, walked by `walk`).

Each problem is an OperationOutcome issue whose `expression` names the element, e.g.
`Observation.status`, so a connector can point at the source row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from phr_server import invariants, profiles, vital_signs
from phr_server.indexing import unindexable_dates
from phr_server.issues import issue
from phr_server.validation.bindings import resource_codes
from phr_server.validation.elements import check_element
from phr_server.validation.structure import Invalid, parse
from phr_server.validation.walk import walk

__all__ = ["Invalid", "validate"]


def validate(
    resource: Any,
    root: str | None = None,
    resolve: Callable[[str], str | None] | None = None,
) -> None:
    """Raise Invalid listing every problem of `resource`. `root` prefixes expressions (e.g.
    `Bundle.entry[3].resource`); `resolve` maps a `urn:uuid:` reference to its entry's type."""
    model, rtype, base = parse(resource, root)
    issues = resource_codes(resource, rtype, base)
    if (
        rtype == "Observation"
        and resource.get("dataAbsentReason")
        and any(k.startswith("value") for k in resource)
    ):
        issues.append(issue(f"{base}.dataAbsentReason", "obs-6: dataAbsentReason with a value"))
    issues.extend(invariants.resource_rules(resource, base))
    walk(
        model,
        base,
        resource,
        lambda o, p, raw: check_element(o, p, raw, rtype, base, resolve, issues),
    )
    for where in unindexable_dates(resource):  # never stored unsearchable, never a 500
        issues.append(issue(f"{base}.{where}", f"{base}.{where}: not a date the index can hold"))
    issues.extend(vital_signs.check(resource, base))  # the R4 vital signs profiles
    issues.extend(profiles.check(resource, base))  # JP Core (profiles.py)
    if issues:
        raise Invalid(issues)
