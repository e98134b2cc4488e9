"""Guardianship: the city names a parent's children when it answers their link request (or
later, by the parent's code); both parents can be guardians; it ends at GUARDIANSHIP_END_AGE."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from consent import linkage
from consent.api.patients import patient_list
from consent.linkage import GUARDIANSHIP_END_AGE, guardianship_end
from phr_core.webapp import database
from tests.consent.conftest import CITY, Tokens, link_city

MOTHER, FATHER = "phr-sub-mother", "phr-sub-father"
CHILD = {"code": "CODE-CHILD", "birthdate": "2025-06-01", "relationship": "mother"}


def _codes(client: FlaskClient, tokens: Tokens, category: str = "mch") -> list[str]:
    return client.get(
        f"/api/v1/municipalities/{CITY}/consents?category={category}", headers=tokens.connector()
    ).json["codes"]


def _patients(client: FlaskClient, tokens: Tokens, sub: str) -> list[dict]:
    return client.get(f"/api/v1/subjects/{sub}/patients", headers=tokens.phr).json["patients"]


def test_both_parents_are_guardians(client: FlaskClient, tokens: Tokens) -> None:
    link_city(client, tokens, MOTHER, "CODE-MOTHER", children=[CHILD])
    link_city(client, tokens, FATHER, "CODE-FATHER", children=[CHILD | {"relationship": "father"}])
    for sub, own in ((MOTHER, "CODE-MOTHER"), (FATHER, "CODE-FATHER")):
        found = _patients(client, tokens, sub)
        assert [(p["municipality"], p["code"], p["relationship"]) for p in found] == [
            (CITY, own, "self"),
            (CITY, "CODE-CHILD", "child"),
        ]
        # labels for a chooser, never a name: the city, and the child's birth month
        assert all(p["municipality_name"] and p["municipality_name_en"] for p in found)
        assert "birth_month" not in found[0] and found[1]["birth_month"] == "2025-06"
    assert _codes(client, tokens) == ["CODE-CHILD", "CODE-FATHER", "CODE-MOTHER"]
    # A stranger reaches nobody.
    assert _patients(client, tokens, "phr-sub-stranger") == []

    # The child's data keeps flowing while either guardian consents for it.
    client.post(
        f"/api/v1/subjects/{MOTHER}/municipalities/{CITY}/consent/withdraw", headers=tokens.idp
    )
    assert _codes(client, tokens) == ["CODE-CHILD", "CODE-FATHER"]
    client.post(
        f"/api/v1/subjects/{FATHER}/municipalities/{CITY}/consent/withdraw", headers=tokens.idp
    )
    assert _codes(client, tokens) == []
    # Guardianship itself stays: both still reach what was already loaded.
    assert len(_patients(client, tokens, MOTHER)) == 2


def test_consent_for_children_is_the_parents_choice(client: FlaskClient, tokens: Tokens) -> None:
    link_city(client, tokens, MOTHER, "CODE-MOTHER", children=[CHILD], include_children=False)
    assert _codes(client, tokens) == ["CODE-MOTHER"]
    assert [p["code"] for p in _patients(client, tokens, MOTHER)] == ["CODE-MOTHER", "CODE-CHILD"]
    consents = client.get(f"/api/v1/subjects/{MOTHER}/consents", headers=tokens.idp).json
    assert [c["patient"] for c in consents["consents"]] == [None]
    # Consenting again with children included adds the child's consent, no new link request.
    r = client.post(
        f"/api/v1/subjects/{MOTHER}/municipalities/{CITY}/consent",
        json={"categories": ["mch", "vaccination", "checkup"], "include_children": True},
        headers=tokens.idp,
    )
    assert r.json["linked"] is True
    assert _codes(client, tokens) == ["CODE-CHILD", "CODE-MOTHER"]
    consents = client.get(f"/api/v1/subjects/{MOTHER}/consents", headers=tokens.idp).json
    assert consents["consents"][1]["patient"] == {"municipality": CITY, "code": "CODE-CHILD"}


def test_a_child_born_later_is_added_by_the_parents_code(
    client: FlaskClient, tokens: Tokens
) -> None:
    link_city(client, tokens, MOTHER, "CODE-MOTHER")
    child = {"code": "CODE-CHILD", "birth_date": "2025-06-01", "relationship": "mother"}
    r = client.post(
        f"/api/v1/municipalities/{CITY}/guardianships",
        json={"guardian_code": "CODE-MOTHER", "children": [child]},
        headers=tokens.connector(),
    )
    assert r.json["guardians_linked"] == 1
    assert [p["relationship"] for p in _patients(client, tokens, MOTHER)] == ["self", "child"]
    assert _codes(client, tokens, "vaccination") == ["CODE-CHILD", "CODE-MOTHER"]
    r = client.post(
        f"/api/v1/municipalities/{CITY}/guardianships",
        json={"guardian_code": "UNKNOWN", "children": [CHILD]},
        headers=tokens.connector(),
    )
    assert r.json["guardians_linked"] == 0
    bad = client.post(
        f"/api/v1/municipalities/{CITY}/guardianships",
        json={"guardian_code": "CODE-MOTHER", "children": [{"code": "C", "birthdate": "x"}]},
        headers=tokens.connector(),
    )
    assert bad.status_code == 400


def test_guardianship_ends_at_the_configured_age(
    client: FlaskClient, tokens: Tokens, consent_app: Flask
) -> None:
    assert GUARDIANSHIP_END_AGE == 18
    today = datetime.now(UTC).date()
    born = today.replace(year=today.year - GUARDIANSHIP_END_AGE) + timedelta(days=3)
    adult = {"code": "CODE-ADULT", "birthdate": "2000-01-01", "relationship": "mother"}
    teen = {"code": "CODE-TEEN", "birthdate": born.isoformat(), "relationship": "mother"}
    link_city(client, tokens, MOTHER, "CODE-MOTHER", children=[teen, adult])
    assert [p["code"] for p in _patients(client, tokens, MOTHER)] == ["CODE-MOTHER", "CODE-TEEN"]
    assert _codes(client, tokens) == ["CODE-MOTHER", "CODE-TEEN"]

    birthday = datetime.combine(guardianship_end(born), datetime.min.time(), UTC)
    with consent_app.app_context():
        before = patient_list(MOTHER, now=birthday - timedelta(days=1))
        after = patient_list(MOTHER, now=birthday)  # from the cache, filtered by date
        assert [p["code"] for p in before] == ["CODE-MOTHER", "CODE-TEEN"]
        assert [p["code"] for p in after] == ["CODE-MOTHER"]
        with database().session() as s:
            assert linkage.consented_codes(s, CITY, "mch", birthday) == ["CODE-MOTHER"]


def test_guardianship_end_dates() -> None:
    assert guardianship_end(date(2020, 5, 17)) == date(2038, 5, 17)
    assert guardianship_end(date(2024, 2, 29)) == date(2042, 3, 1)


def test_the_city_ends_a_guardianship(client: FlaskClient, tokens: Tokens) -> None:
    link_city(client, tokens, MOTHER, "CODE-MOTHER", children=[CHILD])
    link_city(client, tokens, FATHER, "CODE-FATHER", children=[CHILD])
    r = client.post(
        f"/api/v1/municipalities/{CITY}/guardianships/end",
        json={"guardian_code": "CODE-FATHER", "child_code": "CODE-CHILD", "reason": "custody"},
        headers=tokens.connector(),
    )
    assert r.json["guardianships_ended"] == 1
    assert [p["code"] for p in _patients(client, tokens, FATHER)] == ["CODE-FATHER"]
    assert [p["code"] for p in _patients(client, tokens, MOTHER)] == ["CODE-MOTHER", "CODE-CHILD"]
    father = client.get(f"/api/v1/subjects/{FATHER}/consents", headers=tokens.idp).json
    assert [
        (c["patient"] or {}).get("code") for c in father["consents"] if c["status"] == "active"
    ] == [None]
    # The mother's consent for the child still lets the child's data flow.
    assert _codes(client, tokens) == ["CODE-CHILD", "CODE-FATHER", "CODE-MOTHER"]
