"""Mapping: every resource validates with the fhir.resources R4B models, carries the shared
identifier systems and JP Core profiles, and no name, address, resident or card number."""

from __future__ import annotations

import io
import json
from collections import Counter
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
