"""OAuth scopes in plain words for the portal's pages (the same words as the IdP's consent
screen, so a person recognises what they approved)."""

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
    "AuditEvent": ("アクセス履歴", "access history"),
    "*": ("すべての健康記録", "all your health records"),
}

OTHER = {
    "openid": ("あなたがだれかを確認する", "Know who you are when you sign in"),
    "offline_access": (
        "あなたが使っていない間もアクセスを続ける（取り消すまで）",
        "Keep access while you are not using the app (until you revoke it)",
    ),
    "launch/patient": ("どの人の記録かを選ぶ", "Know whose record you chose"),
}


def describe(scope: str, lang: str) -> str:
    ja = lang == "ja"
    if scope in OTHER:
        return OTHER[scope][0 if ja else 1]
    m = SMART_RE.match(scope)
    if not m:
        return scope
    _, resource, perms, _query = m.groups()
    name_ja, name_en = RESOURCE_NAMES.get(resource, (resource, resource))
    writes = perms in ("write", "*") or any(c in perms for c in "cud")
    if ja:
        return f"{name_ja}を{'見る・変更する' if writes else '見る'}"
    return f"{'Read and change' if writes else 'Read'} your {name_en}"


def describe_all(scopes: list[str], lang: str) -> list[str]:
    """Each distinct description once, in the order the scopes came."""
    return list(dict.fromkeys(describe(s, lang) for s in scopes))
