"""What the PHR server refuses to store, whoever writes it: the database holds no names,
addresses, contact details, photos or individual numbers, and no free text (which could hold
any of them). Connectors map none of these; this is the server's own door, so a connector bug
or a stolen connector token cannot put them there either.

Refused (each as an OperationOutcome issue naming the element, never its value):

* people's details: `Patient.name`, `.address`, `.telecom`, `.photo`, `.contact`;
  `RelatedPerson.name`, `.address`, `.telecom`, `.photo`; `Organization.contact` (a person);
  and the same data types smuggled in an extension (`valueHumanName`, `valueAddress`,
  `valueContactPoint`, `valueAttachment`);
* free text: the narrative `text` of a resource, every `note` (Annotation) and
  `ExplanationOfBenefit.processNote`, `valueString` and `valueMarkdown` anywhere (Observation
  values, components, extensions, supporting information), and `Dosage.text` /
  `Dosage.patientInstruction`;
* a string anywhere holding twelve digits in a row (alone or in groups of four, outside a
  UUID): the form of a 個人番号 (My Number), which no FHIR element we accept legitimately
  carries (ids, identifiers and codes included: a resident number there would become a
  searchable, unencrypted index value).

Not refused: coded text that labels a code (`CodeableConcept.text`, `Coding.display`,
`Reference.display`) and Organization names, which connectors send from their code tables and
facility registers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from phr_core import jsonbytes
from phr_server.issues import issue

PEOPLE: dict[str, tuple[str, ...]] = {
    "Patient": ("name", "address", "telecom", "photo", "contact"),
    "RelatedPerson": ("name", "address", "telecom", "photo"),
    "Organization": ("contact",),
}
# Keys refused wherever they occur, and why.
ANYWHERE: dict[str, str] = {
    "note": "free text",
    "processNote": "free text",
    "valueString": "free text",
    "valueMarkdown": "free text",
    "patientInstruction": "free text",
    "valueHumanName": "a person's name",
    "valueAddress": "an address",
    "valueContactPoint": "contact details",
    "valueAttachment": "an attachment (photo or document)",
}
# `text` is free text in a Dosage (and the narrative at a resource's root); elsewhere it labels
# a code (CodeableConcept.text) and stays.
DOSAGE_KEYS = ("dosageInstruction", "dosage")
# Twelve digits (ASCII or full-width: `\d` in a str pattern), alone or as 4-4-4 groups.
TWELVE_DIGITS = re.compile(r"\d{4}[-\s\u2010\uff0d]?\d{4}[-\s\u2010\uff0d]?\d{4}")
_DIGIT_RUN = re.compile(r"\d+")
# A UUID (a Bundle's `urn:uuid:` references) is random, not a number: its 4-4-4 and 12-digit
# groups do not count.
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Nor is a hex digest of 32 or 64 characters (the connectors' hashed identifiers,
# `claim:80e1ca75…`): twelve digits falling in a row strictly inside one, with hex letters on
# both sides, do not count (one claim in about a thousand was refused, and so lost, for a run
# inside its hash). Twelve digits at a digest's start or end still do: this is a net for a
# careless writer's number, not a defence against one hidden on purpose.
DIGEST = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32}(?:[0-9a-fA-F]{32})?(?![0-9A-Za-z])")


def problems(resource: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """OperationOutcome issues for every element of `resource` the server does not store;
    `base` is the resource's FHIRPath (`Patient`, `Bundle.entry[2].resource`)."""
    out: list[dict[str, Any]] = []
    rtype = resource.get("resourceType")
    for key in PEOPLE.get(str(rtype), ()):
        if key in resource:
            out.append(
                _refused(
                    f"{base}.{key}",
                    f"{rtype}.{key}: the PHR server stores no"
                    " names, addresses, contact details or photos of people",
                )
            )
    if "text" in resource:
        out.append(
            _refused(
                f"{base}.text",
                f"{rtype}.text: the PHR server stores no narrative"
                " (free text); send coded data only",
            )
        )
    refused_here = {*PEOPLE.get(str(rtype), ()), "text"}
    rest = {k: v for k, v in resource.items() if k not in refused_here}
    if not _may_hold_more(rest):
        return out
    for path, key, value in _elements(rest, base):
        if key in ANYWHERE:
            why = ANYWHERE[key]
            out.append(_refused(path, f"{path}: {why} is not stored by the PHR server"))
        elif isinstance(value, str) and has_twelve_digits(value):
            out.append(
                _refused(
                    path,
                    f"{path}: twelve digits in a row look like an individual number"
                    " (個人番号), which the PHR server does not store",
                )
            )
    return out


def _may_hold_more(resource: dict[str, Any]) -> bool:
    """False when the resource's JSON text has none of the refused keys and no twelve digits:
    one pass of C code over the text instead of a Python walk over every element, which is
    then done only to name what was found (an answer that is wrong can only be True)."""
    try:
        text = jsonbytes.dumps(resource).decode()
    except (TypeError, ValueError):
        return True
    return any(f'"{key}":' in text for key in ANYWHERE) or has_twelve_digits(text)


def has_twelve_digits(text: str) -> bool:
    """Twelve digits in a row, alone (no digit right before or after) or as 4-4-4 groups,
    outside any UUID and not strictly inside a hex digest. Looked for where a run of digits
    starts only: a regex with look-arounds tried at every position costs more than the rest of
    this module together."""
    for run in _DIGIT_RUN.finditer(text):
        at = run.start()
        m = TWELVE_DIGITS.match(text, at) if run.end() - at >= 4 else None
        alone = m and not (m.end() < len(text) and text[m.end()].isdigit())
        if m and alone and not _random(text, at, m.end()):
            return True
    return False


def _random(text: str, start: int, end: int) -> bool:
    """Is text[start:end] part of a UUID, or strictly inside a hex digest?"""
    if any(u.start() <= start and end <= u.end() for u in UUID.finditer(text)):
        return True
    return any(d.start() < start and end < d.end() for d in DIGEST.finditer(text))


def _refused(path: str, diagnostics: str) -> dict[str, Any]:
    return issue(path, diagnostics, "business-rule")


def _elements(node: Any, path: str, key: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every element below `node`; a refused key's value is not walked
    (one issue for it is enough); Dosage.text is reported as free text, like
    `patientInstruction`."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}"
            if k in ANYWHERE:
                yield p, k, v
                continue
            if key in DOSAGE_KEYS and k == "text":
                yield p, "patientInstruction", v
                continue
            yield from _leaf_or_walk(v, p, k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaf_or_walk(v, f"{path}[{i}]", key)


def _leaf_or_walk(value: Any, path: str, key: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict | list):
        yield from _elements(value, path, key)
    else:
        yield path, key, value
