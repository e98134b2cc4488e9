"""Scopes in plain words: granular SMART v2 filters the platform knows are put in words; any
other filter is shown as written, so a person never sees less than what is asked."""

from __future__ import annotations

from phr_core.scope_words import describe

JP = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
HL7 = "http://terminology.hl7.org/CodeSystem/observation-category"


def test_known_category_filters_in_words() -> None:
    scope = f"patient/Observation.rs?category={JP}|body-measurement"
    assert describe(scope, "ja") == "健診・計測の結果（身長・体重など）を見る（身体計測のみ）"
    assert describe(scope, "en") == (
        "Read your checkup results and measurements (body measurements only)"
    )
    assert describe(f"patient/Observation.rs?category={HL7}|laboratory", "en").endswith(
        "(laboratory results only)"
    )
    assert describe("patient/Observation.rs?category=vital-signs", "ja").endswith(
        "（バイタルサインのみ）"
    )


def test_other_filters_are_shown_as_written() -> None:
    other = "patient/Observation.rs?category=http://example.org/cs|exam"
    assert describe(other, "en").endswith("(category=http://example.org/cs|exam)")
    two = "patient/Observation.rs?category=vital-signs&code=http://loinc.org|8302-2"
    assert describe(two, "ja").endswith("（category=vital-signs&code=http://loinc.org|8302-2）")


def test_wildcard_reads_naturally() -> None:
    assert describe("patient/*.rs", "en") == "Read your health records, all of them"
    assert describe("patient/*.rs", "ja") == "すべての健康記録を見る"


def test_user_scopes_say_whose_records() -> None:
    """Issue 14, item 3: a `user/` scope reaches everyone the person may see, not one chosen
    record, and is worded so (only the platform's own portal holds one)."""
    assert describe("user/Immunization.rs", "ja") == "あなたとお子さんの予防接種の記録を見る"
    assert describe("user/Immunization.rs", "en") == (
        "Read the vaccination records of you and your children"
    )
    assert describe("patient/Immunization.rs", "en") == "Read your vaccination records"
    assert describe("user/Immunization.rs", "en") != describe("patient/Immunization.rs", "en")
