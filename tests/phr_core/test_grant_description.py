"""One description of a grant for the consent screen and the portal: the facts an app gives
are worded from the catalog, the ones it does not give are shown as missing (flagged), and a
grant recorded before details were kept still reads."""

from __future__ import annotations

from datetime import UTC, datetime

from phr_core.grant_description import GrantFacts, PatientFacts, describe

ENDS = datetime(2027, 12, 7, 16, 0, tzinfo=UTC)  # 8 Dec in Japan
META = {
    "client_name": "すくすく成長アプリ",
    "client_name#en": "Growth app",
    "organization_name": "すくすく株式会社",
    "purpose": "成長を表示するため",
    "policy_uri": "https://growth.example.jp/privacy",
}
SCOPES = ["openid", "offline_access", "launch/patient", "patient/Immunization.rs"]


def test_the_facts_in_each_language() -> None:
    child = PatientFacts("child", "会津若松市", "Aizuwakamatsu", "2025-04")
    facts = GrantFacts.of_client("growth-app", META, SCOPES, ENDS, child)
    ja = describe(facts, "ja")
    en = describe(facts, "en")
    assert (ja.app, en.app) == ("すくすく成長アプリ", "Growth app")
    lines = {x.key: x for x in ja.lines}
    assert [x.key for x in ja.lines] == [
        "publisher", "purpose", "record", "data", "offline", "expires", "links"
    ]  # fmt: skip
    assert lines["record"].text == "お子さん・2025年4月生まれ（会津若松市）"
    assert lines["data"].items == (("patient/Immunization.rs", "予防接種の記録を見る"),)
    assert lines["expires"].text.startswith("2027年12月8日まで")
    assert lines["links"].items == (("https://growth.example.jp/privacy", "プライバシーポリシー"),)
    assert not any(x.flagged for x in ja.lines)
    # A Japanese-only purpose is shown in English too rather than as missing.
    assert {x.key: x for x in en.lines}["purpose"].text == "成長を表示するため"
    assert {x.key: x for x in en.lines}["expires"].text.startswith("On December 8, 2027")


def test_what_the_app_does_not_say_is_flagged() -> None:
    facts = GrantFacts.of_client("bare-app", {}, ["openid", "patient/Immunization.rs"], ENDS)
    lines = {x.key: x for x in describe(facts, "ja").lines}
    assert describe(facts, "ja").app == "bare-app"
    for key in ("publisher", "purpose", "links"):
        assert lines[key].flagged and lines[key].text.startswith("（"), key
    assert "record" not in lines and "offline" not in lines


def test_the_details_round_trip_and_old_grants_still_read() -> None:
    child = PatientFacts("self", "会津若松市", "Aizuwakamatsu")
    facts = GrantFacts.of_client("growth-app", META, SCOPES, ENDS, child)
    again = GrantFacts.of_grant(
        facts.details(), app="x", scopes=SCOPES, expires=ENDS, purpose="ignored"
    )
    assert describe(again, "en") == describe(facts, "en")
    old = GrantFacts.of_grant(None, app="古いアプリ", scopes=SCOPES, expires=None, purpose="目的")
    lines = {x.key: x for x in describe(old, "ja").lines}
    assert describe(old, "ja").app == "古いアプリ" and lines["purpose"].text == "目的"
    assert lines["publisher"].flagged and lines["expires"].text == "期限なし（取り消すまで）"


def test_a_sign_in_only_app_says_it_sees_no_records() -> None:
    facts = GrantFacts.of_client("sign-in", META, ["openid"], ENDS)
    data = describe(facts, "ja").line("data")
    assert data.items == () and data.text == "（記録は見られません。サインインだけに使います）"
