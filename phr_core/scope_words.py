"""OAuth scopes in plain words, one vocabulary for the IdP's consent screen and the portal's
"who can see my data" page, so a person recognises on one what they approved on the other."""

from __future__ import annotations

import re

SMART_RE = re.compile(
    r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(\?[^\s]+)?$"
)

RESOURCE_NAMES = {
    "Immunization": ("予防接種の記録", "vaccination records"),
    "Observation": ("健診・計測の結果（身長・体重など）", "checkup results and measurements"),
    "Patient": ("基本情報（仮名化された識別子）", "basic record (pseudonymous)"),
    "RelatedPerson": ("親子のつながり", "parent–child links"),
    "Encounter": ("受診・健診の記録", "visits and checkups"),
    "Condition": ("病名", "diagnoses"),
    "Procedure": ("診療行為", "procedures"),
    "MedicationDispense": ("調剤された薬", "dispensed medicines"),
    "ExplanationOfBenefit": ("診療報酬明細（レセプト）", "insurance claims"),
    "Claim": ("診療報酬明細（レセプト）", "insurance claims"),
    "Coverage": ("保険の情報", "insurance coverage"),
    "Organization": ("医療機関・自治体", "facilities and municipalities"),
    "Consent": ("同意の記録", "consent records"),
    "AuditEvent": ("アクセス履歴", "access history"),
    "Provenance": ("記録の出所", "record sources"),
    "*": ("すべての健康記録", "health records, all of them"),
}


# Granular SMART v2 filters in words (`?category=SYSTEM|CODE`, or the bare code); others are
# shown as written.
_HL7_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_JP_CATEGORY = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
_CATEGORY_WORDS = {
    (_JP_CATEGORY, "body-measurement"): ("身体計測のみ", "body measurements only"),
    (_HL7_CATEGORY, "vital-signs"): ("バイタルサインのみ", "vital signs only"),
    (_HL7_CATEGORY, "laboratory"): ("検査結果のみ", "laboratory results only"),
    (_HL7_CATEGORY, "exam"): ("診察所見のみ", "examination findings only"),
}
FILTER_NAMES = {
    ("category", value): words
    for (system, code), words in _CATEGORY_WORDS.items()
    for value in (f"{system}|{code}", code)
}


def _filter_words(query: str, ja: bool) -> str:
    """`?category=http://…|body-measurement` → 身体計測のみ / body measurements only."""
    name, _, value = query[1:].partition("=")
    words = FILTER_NAMES.get((name, value))
    if words is None:
        return query[1:]
    return words[0] if ja else words[1]


def describe(scope: str, lang: str) -> str:
    """A scope in plain words (Japanese or English)."""
    ja = lang == "ja"
    if scope == "openid":
        return "このアプリにサインインする" if ja else "Sign in to this app"
    if scope == "offline_access":
        return (
            "あなたが使っていない間もアクセスを続ける（取り消すまで）"
            if ja
            else "Keep access while you are not using the app (until you revoke it)"
        )
    if scope == "consent/notices.read":
        return "お知らせ（新しい記録・予防接種の時期）を見る" if ja else "Read your notices"
    if scope == "launch/patient":
        return "どの人の記録かを選ぶ" if ja else "Know whose record you chose"
    m = SMART_RE.match(scope)
    if not m:
        return scope
    context, resource, perms, query = m.groups()
    name_ja, name_en = RESOURCE_NAMES.get(resource, (resource, resource))
    writes = perms in ("write", "*") or any(c in perms for c in "cud")
    # `patient/` opens the one record chosen; `user/` everyone the person may see (only the
    # platform's own portal holds it: idp.scopes.app_scope_refusal), and says so.
    if ja:
        verb = "見る・変更する" if writes else "見る"
        whose = "あなたとお子さまの" if context == "user" else ""
        text = f"{whose}{name_ja}を{verb}"
    else:
        verb = "Read and change" if writes else "Read"
        whose = "the" if context == "user" else "your"
        text = f"{verb} {whose} {name_en}"
        if context == "user":
            text += " of you and your children"
    if query:
        words = _filter_words(query, ja)
        text += f"（{words}）" if ja else f" ({words})"
    return text
