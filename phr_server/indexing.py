"""What the server indexes of each resource type: the search parameters it supports, which
elements feed them, and which Patient compartment a resource belongs to. One table, read by
the writer (to fill the index tables), the search parser (to know the parameters) and
/metadata (to tell the truth about them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phr_server.dates import JST, MAX_US, MIN_US, from_us, to_us, value_range


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # token | date | reference
    paths: tuple[str, ...] = ()  # JSON element names (first level; `a.b` for nested)
    doc: str = ""
    by_month: bool = False  # dates indexed (and searched) as their whole calendar month


@dataclass(frozen=True)
class TypeSpec:
    name: str
    params: dict[str, Param] = field(default_factory=dict)
    compartment: tuple[str, ...] = ()  # elements that reference the Patient(s) it belongs to
    sort_param: str | None = None  # the date `_sort=date` orders by
    profile: str | None = None  # JP Core profile, when one exists
    writable: bool = True


JP = "http://jpfhir.jp/fhir/core/StructureDefinition/"
IDENTIFIER_DOC = (
    "identifier; an app gives system|value (or |value for one without a system) with the"
    " values it was given, never a bare value"
)


def _spec(name: str, *params: Param, compartment=(), sort=None, profile=None, writable=True):
    ps = {"identifier": Param("identifier", "token", ("identifier",), IDENTIFIER_DOC)}
    for p in params:
        ps[p.name] = p
    if compartment and name != "Patient":
        ps["patient"] = Param("patient", "reference", compartment, "the Patient it is about")
    return TypeSpec(name, ps, tuple(compartment), sort, profile, writable)


def _status() -> Param:
    return Param("status", "token", ("status",), "status")


SUBJECT = ("subject",)
TYPES: dict[str, TypeSpec] = {
    s.name: s
    for s in (
        _spec(
            "Patient",
            Param("gender", "token", ("gender",)),
            # A dump of the index must not show exact birth dates: indexed by month only.
            Param("birthdate", "date", ("birthDate",), "birth month (JST)", by_month=True),
            profile=JP + "JP_Patient",
        ),
        _spec("RelatedPerson", compartment=("patient",), profile=JP + "JP_RelatedPerson"),
        _spec(
            "Observation",
            Param("code", "token", ("code",)),
            Param("category", "token", ("category",)),
            _status(),
            Param("date", "date", ("effectiveDateTime", "effectivePeriod", "effectiveInstant")),
            Param("subject", "reference", SUBJECT),
            compartment=SUBJECT,
            sort="date",
            profile=JP + "JP_Observation_Common",
        ),
        _spec(
            "Immunization",
            Param("vaccine-code", "token", ("vaccineCode",)),
            _status(),
            Param("date", "date", ("occurrenceDateTime",)),
            compartment=("patient",),
            sort="date",
            profile=JP + "JP_Immunization",
        ),
        _spec(
            "Encounter",
            _status(),
            Param("date", "date", ("period",)),
            Param("subject", "reference", SUBJECT),
            compartment=SUBJECT,
            sort="date",
            profile=JP + "JP_Encounter",
        ),
        _spec(
            "Condition",
            Param("code", "token", ("code",)),
            Param("category", "token", ("category",)),
            Param("clinical-status", "token", ("clinicalStatus",)),
            Param("recorded-date", "date", ("recordedDate",)),
            Param("onset-date", "date", ("onsetDateTime", "onsetPeriod")),
            Param("subject", "reference", SUBJECT),
            compartment=SUBJECT,
            sort="recorded-date",
            profile=JP + "JP_Condition",
        ),
        _spec(
            "Procedure",
            Param("code", "token", ("code",)),
            _status(),
            Param("date", "date", ("performedDateTime", "performedPeriod")),
            Param("subject", "reference", SUBJECT),
            compartment=SUBJECT,
            sort="date",
            profile=JP + "JP_Procedure",
        ),
        _spec(
            "MedicationDispense",
            Param("code", "token", ("medicationCodeableConcept",)),
            _status(),
            Param("whenhandedover", "date", ("whenHandedOver",)),
            Param("subject", "reference", SUBJECT),
            compartment=SUBJECT,
            sort="whenhandedover",
            profile=JP + "JP_MedicationDispense",
        ),
        _spec(
            "Claim",
            _status(),
            Param("use", "token", ("use",)),
            Param("created", "date", ("created",)),
            compartment=("patient",),
            sort="created",
        ),
        _spec(
            "ExplanationOfBenefit",
            _status(),
            Param("created", "date", ("created",)),
            compartment=("patient",),
            sort="created",
        ),
        _spec(
            "Coverage",
            _status(),
            compartment=("beneficiary", "subscriber"),
            profile=JP + "JP_Coverage",
        ),
        _spec("Organization", profile=JP + "JP_Organization"),
        _spec(
            "Consent",
            _status(),
            Param("date", "date", ("dateTime",)),
            compartment=("patient",),
            sort="date",
            profile=JP + "JP_Consent",
        ),
        _spec(
            "AuditEvent",
            Param("date", "date", ("recorded",)),
            Param("subtype", "token", ("subtype",)),
            Param("action", "token", ("action",)),
            compartment=("entity.what",),
            sort="date",
            writable=False,
        ),
        # In the compartment of the Patient it targets (FHIR's Provenance.patient), so
        # `$everything` returns each record's Provenance and with it the source city.
        _spec(
            "Provenance",
            Param("recorded", "date", ("recorded",)),
            compartment=("target",),
            sort="recorded",
        ),
    )
}

# Parameters every type has, answered from the resource table itself.
COMMON = {
    "_id": Param("_id", "token", (), "logical id"),
    "_lastUpdated": Param("_lastUpdated", "date", (), "when the server last changed it"),
}


def _values(resource: dict[str, Any], path: str) -> list[Any]:
    items: list[Any] = [resource]
    for part in path.split("."):
        nxt: list[Any] = []
        for it in items:
            if isinstance(it, dict) and part in it:
                v = it[part]
                nxt.extend(v if isinstance(v, list) else [v])
        items = nxt
    return items


def token_values(value: Any) -> list[tuple[str, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, str | bool):
        return [("", str(value).lower() if isinstance(value, bool) else value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        return [(c.get("system", ""), c["code"]) for c in value["coding"] if c.get("code")]
    if "code" in value:
        return [(value.get("system", ""), value["code"])]
    if "value" in value and isinstance(value["value"], str):
        return [(value.get("system", ""), value["value"])]
    return []


def date_range(value: Any) -> tuple[int, int] | None:
    if isinstance(value, dict):  # Period: open ends reach forever
        start = value_range(value["start"]) if value.get("start") else None
        end = value_range(value["end"]) if value.get("end") else None
        if start is None and end is None:
            return None
        return (start[0] if start else MIN_US, end[1] if end else MAX_US)
    return value_range(value)


def whole_months(start_us: int, end_us: int) -> tuple[int, int]:
    """[start, end) widened to whole calendar months in Japan Standard Time: `2020-05-14`
    becomes May 2020. What the index keeps of a birth date, and how a query on it is read.
    A bound beyond what a datetime holds (an open end) stays as it is."""
    return _month_start(start_us), _month_start(max(end_us - 1, start_us), after=True, keep=end_us)


def _month_start(us: int, after: bool = False, keep: int | None = None) -> int:
    """The start of the JST month holding `us` (of the next month when `after`)."""
    try:
        t = from_us(us).astimezone(JST)
        if after:
            t = (
                t.replace(year=t.year + 1, month=1)
                if t.month == 12
                else t.replace(month=t.month + 1)
            )
        return to_us(t.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    except (OverflowError, ValueError):
        return us if keep is None else keep


def unindexable_dates(resource: dict[str, Any]) -> list[str]:
    """Element paths (below the resource) of searchable dates the index cannot hold, so the
    write is refused at that element (a 400) instead of storing a date no search finds."""
    spec = TYPES.get(resource.get("resourceType", ""))
    out: list[str] = []
    for p in spec.params.values() if spec else ():
        if p.kind != "date":
            continue
        for path in p.paths:
            for v in _values(resource, path):
                parts = (
                    [("start", v.get("start")), ("end", v.get("end"))]
                    if isinstance(v, dict)
                    else [("", v)]
                )
                for sub, raw in parts:
                    if raw is not None and value_range(raw) is None:
                        out.append(f"{path}.{sub}" if sub else path)
    return out


def reference_id(value: Any, target: str = "Patient") -> str | None:
    """The id of a `Reference` to `target` in relative form (`Patient/123`)."""
    if isinstance(value, dict):
        ref = value.get("reference") or ""
        prefix = target + "/"
        if ref.startswith(prefix):
            rid, _, version = ref[len(prefix) :].partition("/_history/")
            if "/" not in rid and "/" not in version:  # `Patient/1` or `Patient/1/_history/2`
                return rid
    return None


@dataclass
class IndexValues:
    tokens: set[tuple[str, str, str]]  # (param, system, code)
    dates: list[tuple[str, int, int]]  # (param, start_us, end_us)
    patients: set[str]
    sort_us: int


def extract(resource: dict[str, Any]) -> IndexValues:
    """Everything the index tables hold for one resource."""
    spec = TYPES[resource["resourceType"]]
    tokens: set[tuple[str, str, str]] = set()
    dates: list[tuple[str, int, int]] = []
    for p in spec.params.values():
        for path in p.paths:
            for v in _values(resource, path):
                if p.kind == "token":
                    tokens.update((p.name, s[:255], c[:255]) for s, c in token_values(v))
                elif p.kind == "date":
                    r = date_range(v)
                    if r is not None:
                        dates.append((p.name, *(whole_months(*r) if p.by_month else r)))
    patients: set[str] = set()
    if spec.name == "Patient":
        patients.add(resource["id"])
    for path in spec.compartment:
        for v in _values(resource, path):
            pid = reference_id(v)
            if pid:
                patients.add(pid)
    sort_us = 0
    if spec.sort_param:
        starts = [d[1] for d in dates if d[0] == spec.sort_param]
        sort_us = min(starts) if starts else 0
    return IndexValues(tokens, dates, patients, sort_us)
