"""The consent service client (HTTP, per the contract in connectors/consent.py), the offline
consent file, and answering link requests from the resident register."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.consent import ConsentClient, FileConsent, answer_link_requests, match_link_requests
from connectors.http import TokenSource
from connectors.pseudonym import Pseudonymizer
from connectors.register import read as read_register
from tests.connectors.helpers import CITY, KEY, make_city
from tests.connectors.stub_server import StubServer


def test_consent_codes_over_http_and_from_a_file(tmp_path: Path) -> None:
    with StubServer() as srv:
        srv.state.consents = {"mch": ["a", "b"], "claims": ["c"]}
        client = ConsentClient(srv.url, CITY, TokenSource(srv.url, "connector-test", "s3cret"))
        assert client.codes("mch") == {"a", "b"}
        assert client.codes("claims") == {"c"}
        assert client.codes("immunization") == set()
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"mch": ["x"]}), encoding="utf-8")
    assert FileConsent(path).codes("mch") == {"x"} and FileConsent(path).codes("claims") == set()


def test_link_requests_are_matched_against_the_register(tmp_path: Path) -> None:
    files = make_city(tmp_path, n=200, months=1)
    residents = list(read_register(files["register"]))
    pseudo = Pseudonymizer(KEY)
    a, b = residents[3], residents[10]
    sex = {"male": "male", "female": "female"}
    requests = [
        # Card-verified attributes, written the way the card has them (full-width digits,
        # no space in the name, 丁目 forms): they still match.
        {
            "id": "r1",
            "name": a.name.replace(" ", "　"),
            "birthdate": a.birthdate.isoformat(),
            "sex": sex[a.sex],
            "address": a.address.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        },
        {
            "id": "r2",
            "name": b.name,
            "birthdate": "1900-01-01",
            "sex": sex[b.sex],
            "address": b.address,
        },
        {"id": "r3", "name": "", "birthdate": "x"},
    ]
    answers = match_link_requests(requests, files["register"], pseudo)
    assert answers == {"r1": pseudo.code(a.number), "r2": None, "r3": None}

    with StubServer() as srv:
        srv.state.link_requests = requests
        client = ConsentClient(srv.url, CITY, TokenSource(srv.url, "connector-test", "s3cret"))
        result = answer_link_requests(client, files["register"], pseudo)
        assert (result.matched, result.no_match) == (1, 2)
        assert srv.state.link_answers == {
            "r1": {"code": pseudo.code(a.number)},
            "r2": {"status": "no_match"},
            "r3": {"status": "no_match"},
        }


def test_ambiguous_match_is_no_match(tmp_path: Path) -> None:
    reg = tmp_path / "register.csv"
    reg.write_text(
        "住民番号,氏名,氏名カナ,生年月日,性別,住所,保険者番号,被保険者証記号,被保険者証番号,枝番\n"
        "1,山田 花子,,2000-01-01,2,会津若松市本町1-2-3,,,,\n"
        "2,山田 花子,,2000-01-01,2,会津若松市本町1丁目2番3号,,,,\n",
        encoding="utf-8",
    )
    req = [
        {
            "id": "q",
            "name": "山田花子",
            "birthdate": "2000-01-01",
            "sex": "female",
            "address": "会津若松市本町1-2-3",
        }
    ]
    assert match_link_requests(req, reg, Pseudonymizer(KEY)) == {"q": None}


def test_a_matched_mother_names_her_children(tmp_path: Path) -> None:
    from connectors.sources import mch_csv
    from connectors.sources.base import Record

    files = make_city(tmp_path, n=400, months=1)
    residents = {r.number: r for r in read_register(files["register"])}
    mother_no = next(
        i.data["mother"]
        for i in mch_csv.read(files["mch"])
        if isinstance(i, Record) and i.data.get("mother") in residents
    )
    m = residents[mother_no]
    children = sorted(
        {
            i.resident
            for i in mch_csv.read(files["mch"])
            if isinstance(i, Record) and i.data.get("mother") == mother_no
        }
    )
    pseudo = Pseudonymizer(KEY)
    req = {
        "id": "m1",
        "name": m.name,
        "birthdate": m.birthdate.isoformat(),
        "sex": "2",
        "address": m.address,
    }
    with StubServer() as srv:
        srv.state.link_requests = [req]
        client = ConsentClient(srv.url, CITY, TokenSource(srv.url, "connector-test", "s3cret"))
        result = answer_link_requests(client, files["register"], pseudo, files["mch"])
    assert (result.matched, result.children) == (1, len(children))
    answer = srv.state.link_answers["m1"]
    assert answer["code"] == pseudo.code(mother_no)
    assert sorted(answer["children"], key=lambda c: c["code"]) == sorted(
        [
            {
                "code": pseudo.code(c),
                "birthdate": residents[c].birthdate.isoformat(),
                "relationship": "mother",
            }
            for c in children
        ],
        key=lambda c: c["code"],
    )
