"""Mapping: every resource validates with the fhir.resources R4B models, carries the shared
identifier systems and JP Core profiles, and no name, address, resident or card number."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from phr_core.identifiers import pseudonym_system, source_record_system
from tests.connectors.helpers import CITY, KEY, Recorder, consents, make_city, pii_strings


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Recorder]:
    tmp = tmp_path_factory.mktemp("city")
    files = make_city(tmp)
    sink = Recorder()
    c = Connector(
        CITY,
        Pseudonymizer(KEY),
        consents(files["consents"]),
        sink,
        register_path=files["register"],
        report=Report(io.StringIO()),
        batch_size=200,
    )
    for p in sorted(tmp.iterdir()):
        if src := detect_source(p):
            s = c.run_file(p, src)
            assert s.rejected == 0
    return files, sink


def _resources(sink: Recorder) -> list[dict[str, Any]]:
    return [e["resource"] for b in sink.bundles for e in b["entry"]]


def test_every_resource_validates_with_fhir_resources_r4b(
    loaded: tuple[dict[str, Any], Recorder],
) -> None:
    _files, sink = loaded
    resources = _resources(sink)
    kinds = Counter(r["resourceType"] for r in resources)
    for t in (
        "Patient",
        "RelatedPerson",
        "Observation",
        "Immunization",
        "Encounter",
        "ExplanationOfBenefit",
        "Condition",
        "Procedure",
        "MedicationDispense",
        "Coverage",
        "Organization",
    ):
        assert kinds[t] > 0, t
    for r in resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    for b in sink.bundles:
        get_fhir_model_class("Bundle").model_validate(b)


def test_no_personal_data_in_output(loaded: tuple[dict[str, Any], Recorder]) -> None:
    files, sink = loaded
    text = json.dumps(sink.bundles, ensure_ascii=False)
    leaked = [s for s in pii_strings(files["register"]) if s in text]
    assert leaked == []
    for r in _resources(sink):
        if r["resourceType"] == "Patient":
            assert set(r) <= {"resourceType", "meta", "identifier", "gender", "birthDate"}
            assert r["identifier"][0]["system"] == pseudonym_system(CITY)


def test_identifiers_profiles_codes_and_units(loaded: tuple[dict[str, Any], Recorder]) -> None:
    _files, sink = loaded
    systems = {source_record_system(CITY, s) for s in ("mch", "vaccination", "uke")}
    for b in sink.bundles:
        urls = {e["fullUrl"] for e in b["entry"]}
        for e in b["entry"]:
            r = e["resource"]
            assert e["fullUrl"].startswith("urn:uuid:")
            assert e["request"]["method"] == "PUT"
            assert e["request"]["url"].startswith(r["resourceType"] + "?identifier=")
            if r["resourceType"] != "Patient":
                assert r["identifier"][0]["system"] in systems
            # every reference inside a bundle points at an entry of the same bundle
            for ref in _refs(r):
                assert ref in urls
    obs = [r for r in _resources(sink) if r["resourceType"] == "Observation"]
    weights = [o for o in obs if any(c.get("code") == "29463-7" for c in o["code"]["coding"])]
    assert weights
    w = weights[0]
    assert {c["system"] for c in w["code"]["coding"]} == {
        "http://loinc.org",
        "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationBodyMeasurementCode_CS",
    }
    assert (
        w["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        and w["valueQuantity"]["code"] == "kg"
    )
    assert w["meta"]["profile"] == [
        "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Observation_BodyMeasurement"
    ]
    conds = [r for r in _resources(sink) if r["resourceType"] == "Condition"]
    assert (
        conds[0]["code"]["coding"][0]["system"]
        == "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease"
    )
    md = [r for r in _resources(sink) if r["resourceType"] == "MedicationDispense"]
    assert (
        md[0]["medicationCodeableConcept"]["coding"][0]["system"]
        == "urn:oid:1.2.392.100495.20.2.71"
    )


def _refs(obj: Any) -> list[str]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out += _refs(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _refs(v)
    return out


def test_identifiers_are_stable_across_runs(
    tmp_path: Path, loaded: tuple[dict[str, Any], Recorder]
) -> None:
    files, first = loaded
    sink = Recorder()
    c = Connector(
        CITY,
        Pseudonymizer(KEY),
        consents(files["consents"]),
        sink,
        register_path=files["register"],
        report=Report(io.StringIO()),
        batch_size=200,
    )
    for p in sorted(Path(files["register"]).parent.iterdir()):
        if src := detect_source(p):
            c.run_file(p, src)

    def ids(s: Recorder) -> list[str]:
        return [e["request"]["url"] for b in s.bundles for e in b["entry"]]

    assert ids(sink) == ids(first)
    assert sink.bundles == first.bundles


def test_pharmacy_claims_become_dispenses_per_prescription(
    loaded: tuple[dict[str, Any], Recorder],
) -> None:
    """調剤 receipts (synthetic, in the verified layout): a MedicationDispense per IY of each
    SH group, handed over on its CZ 調剤年月日 for its 調剤数量 days, by the YK pharmacy."""
    _, sink = loaded
    res = _resources(sink)
    pharmacies = [
        r
        for r in res
        if r["resourceType"] == "Organization"
        and any(c["code"] == "pharmacy" for t in r.get("type", []) for c in t["coding"])
    ]
    # the YK 薬局コード under 都道府県 + 点数表 4: a 10-digit 医療機関コード
    assert pharmacies and all(
        i["value"][2] == "4" and len(i["value"]) == 10
        for r in pharmacies
        for i in r["identifier"]
        if i["system"].endswith("insurance-medical-institution-no")
    )
    eobs = [
        r
        for r in res
        if r["resourceType"] == "ExplanationOfBenefit"
        and r["type"]["coding"][0]["code"] == "pharmacy"
    ]
    assert eobs
    dispensed = [r for r in res if r["resourceType"] == "MedicationDispense" and "daysSupply" in r]
    assert dispensed
    for md in dispensed:
        assert md["daysSupply"]["code"] == "d" and md["daysSupply"]["value"] in (3, 5, 7, 14, 28)
        assert len(md["whenHandedOver"]) == 10  # a day, not a month
        assert md["quantity"]["value"] in (1, 2, 3)


def _systems(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, system or extension url) for every identifier, coding and extension."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("system", "url") and isinstance(v, str):
                yield path, v
            else:
                yield from _systems(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for v in node:
            yield from _systems(v, path)


JP = "http://jpfhir.jp/fhir/core/"
# Every identifier system, code system and extension the mappers emit, with where it is defined.
# JP Core: jami-fhir-jp-wg/jp-core-v1x @ cb1f4ee19ecdb4edaebfe349c43caddbf32ff276
# (input/fsh/aliases-jpcore.fsh, profiles/JP_Organization.fsh); "platform" = ours, docs/codes.md.
SYSTEMS = {
    JP + "IdSystem/insurance-medical-institution-no": "JP_Organization medicalInstitutionCode",
    JP + "Extension/StructureDefinition/JP_Organization_InsuranceOrganizationNo": "extension",
    JP + "mhlw/IdSystem/MedicalOrganizationID": "the extension's value[x].system (exactly)",
    JP + "mhlw/IdSystem/InsurerNumber": "JP_Organization.identifier[insurerNumber] (exactly)",
    "urn:oid:1.2.392.100495.20.3.71": "公費負担者番号: no JP Core system; MHLW OID",
    "urn:oid:1.2.392.100495.20.2.71": "レセ電 医薬品コード: no JP Core system; MHLW OID",
    JP + "mhlw/CodeSystem/masterB-disease": "JP Core $JP_Disease_Claim_CS",
    JP + "mhlw/CodeSystem/masterZ-disease-modifier": "JP Core $JP_Modifier_Disease_Claim_CS",
    JP + "mhlw/CodeSystem/masterS-medicalProcedure": "JP Core $JP_ProcedureCategory_CS",
    JP + "CodeSystem/JP_ConditionDiseaseOutcomeReceipt_CS": "JP Core",
    JP + "Extension/StructureDefinition/JP_Condition_DiseaseOutcome": "JP Core",
    JP + "CodeSystem/JP_ObservationBodyMeasurementCode_CS": "JP Core",
    JP + "CodeSystem/JP_SimpleObservationCategory_CS": "JP Core",
    "http://loinc.org": "LOINC",
    "http://unitsofmeasure.org": "UCUM",
}  # fmt: skip
HL7_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
PLATFORM = ("urn:phr-platform:",)


def test_every_system_the_mappers_emit_is_known_and_documented(
    loaded: tuple[dict[str, Any], Recorder],
) -> None:
    """Issue 18: identifiers and codes other systems recognise. Every system or extension URL
    in the output is a JP Core one (checked against its FSH), a national one JP Core does not
    define, an HL7 terminology, or the platform's own, and docs/codes.md lists it. The old
    urn:oid:…20.3.23 / …20.3.61 identifiers JP Core replaced must not come back."""
    _files, sink = loaded
    seen = {s for r in _resources(sink) for _, s in _systems(r)}
    codes_md = (Path(__file__).parents[2] / "connectors" / "docs" / "codes.md").read_text()
    for s in seen:
        if s.startswith(PLATFORM) or s.startswith(HL7_TERMINOLOGY):
            continue
        assert s in SYSTEMS, s
        assert s in codes_md, s
    assert {
        JP + "IdSystem/insurance-medical-institution-no",
        JP + "mhlw/IdSystem/InsurerNumber",
    } <= seen
    assert not {s for s in seen if s.endswith(("20.3.23", "20.3.61"))}
