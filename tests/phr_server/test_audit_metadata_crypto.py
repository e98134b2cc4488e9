"""AuditEvents for every access, the truthful CapabilityStatement and SMART configuration,
encryption at rest (the SQLite file holds no names or plain bodies) and key rotation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from fhir.resources.R4B import get_fhir_model_class

from phr_core.config import load_settings
from phr_server.audit import build
from phr_server.indexing import TYPES
from phr_server.policy import Access
from phr_server.validation import validate
from tests.phr_server.conftest import World, family_bundle, ids_by_identifier
from tests.phr_server.test_first_party import portal_token

FAMILY = [("P1", "self"), ("C1", "child")]
NAME_KANJI = "山田花子"
NAME_KANA = "ヤマダハナコ"
NOTE = "Secret clinical remark about allergy"


def _audits(world: World, token: str, query: str = "") -> list[dict]:
    body = world.get(f"/AuditEvent?_count=500{query}", token).get_json()
    return [e["resource"] for e in body.get("entry", [])]


def test_every_access_is_audited_and_visible_to_the_person(
    world: World, family: dict[str, str]
) -> None:
    parent = world.user("sub-parent", codes=FAMILY, client_id="app-audit")
    world.get(world.path(family["urn:uuid:o3"], "app-audit"), parent)  # the child's weight
    world.get("/Observation?code=29463-7", parent)
    world.get(
        world.path(family["urn:uuid:o5"], "app-audit"), parent
    )  # someone else's: 404, still audited
    events = _audits(world, parent)
    reads = [e for e in events if e["subtype"][0]["code"] == "read"]
    ok = [e for e in reads if e["outcome"] == "0"]
    assert len(ok) == 1
    what = {x["what"]["reference"] for x in ok[0]["entity"] if "what" in x}
    assert what == {world.ref(family[f"urn:uuid:{k}"], "app-audit") for k in ("o3", "c1")}
    # the app is shown itself and the reader by role; the portal sees who they are
    assert {a["who"]["display"] for a in ok[0]["agent"]} == {"this app", "you"}
    stored = [e for e in _audits(world, portal_token(world, "sub-parent")) if e["outcome"] == "0"]
    who = {a["who"]["identifier"]["value"] for e in stored for a in e["agent"]}
    assert {"app-audit", "sub-parent"} <= who
    searches = [e for e in events if e["subtype"][0]["code"] == "search-type"]
    assert any(e["action"] == "E" for e in searches)
    # each stored AuditEvent is valid FHIR
    for e in events:
        validate(e)
    # the child sees the reads of its own record, not the parent's
    child = world.user("sub-child", codes=[("C1", "self")])
    child_events = _audits(world, child, "&subtype=read")
    refs = {
        x["what"]["reference"] for e in child_events for x in e.get("entity", []) if "what" in x
    }
    assert world.ref(family["urn:uuid:o3"]) in refs
    assert not {world.ref(family[f"urn:uuid:{k}"]) for k in ("o1", "p1")} & refs
    # a stranger sees none of it
    stranger = world.user("sub-stranger", codes=[("S1", "self")])
    seen = json.dumps(_audits(world, stranger))
    assert family["urn:uuid:c1"] not in seen and world.ref(family["urn:uuid:c1"]) not in seen


def test_writes_are_audited_and_audit_events_cannot_be_changed(
    world: World, family: dict[str, str]
) -> None:
    parent = world.user("sub-parent", codes=FAMILY)
    events = _audits(world, parent, "&subtype=transaction")
    assert events and events[0]["agent"][0]["who"] == {"display": "the city's connector"}
    events = _audits(world, portal_token(world, "sub-parent"), "&subtype=transaction")
    assert events and events[0]["agent"][0]["who"]["identifier"]["value"] == "connector-072028"
    event = events[0]
    token = world.connector()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    resp = world.client.put(f"/AuditEvent/{event['id']}", data=json.dumps(event), headers=headers)
    assert resp.status_code == 400
    assert world.client.delete(f"/AuditEvent/{event['id']}", headers=headers).status_code == 405
    assert (
        world.client.post("/AuditEvent", data=json.dumps(event), headers=headers).status_code == 405
    )


def test_capability_statement_tells_the_truth(world: World, family: dict[str, str]) -> None:
    resp = world.client.get("/metadata")
    assert resp.status_code == 200
    cs = resp.get_json()
    get_fhir_model_class("CapabilityStatement").model_validate(cs)
    rest = cs["rest"][0]
    assert {r["type"] for r in rest["resource"]} == set(TYPES)
    parent = world.user("sub-parent", codes=FAMILY)
    samples = {"token": "x", "date": "ge2024-01-01", "reference": "Patient/x"}
    for r in rest["resource"]:
        # every advertised search parameter is accepted (and an unadvertised one is not)
        for p in r["searchParam"]:
            # an app's identifier search names a system (or `|`), as the documentation says
            value = "|x" if p["name"] == "identifier" else samples[p["type"]]
            got = world.get(f"/{r['type']}?{p['name']}={value}", parent)
            assert got.status_code in (200, 403), (r["type"], p["name"], got.get_json())
            if got.status_code == 403:  # Provenance is for connectors only
                assert r["type"] == "Provenance"
        assert world.get(f"/{r['type']}?not-a-param=1", parent).status_code in (400, 403)
        assert world.get(f"/{r['type']}?identifier=x", parent).status_code in (400, 403)
        for inc in r.get("searchInclude", []):
            assert world.get(f"/{r['type']}?_include={inc}", parent).status_code in (200, 403)
        codes = {i["code"] for i in r["interaction"]}
        assert ("update" in codes) == TYPES[r["type"]].writable
    assert rest["interaction"] == [{"code": "transaction"}]
    assert world.client.get("/Practitioner/1").status_code in (401, 404)


def test_smart_configuration(world: World) -> None:
    resp = world.client.get("/.well-known/smart-configuration")
    assert resp.status_code == 200 and resp.is_json
    conf = resp.get_json()
    for field in (
        "token_endpoint",
        "grant_types_supported",
        "capabilities",
        "code_challenge_methods_supported",
    ):
        assert field in conf
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert conf["issuer"] == world.settings.issuer
    assert {"permission-v1", "permission-v2", "permission-patient"} <= set(conf["capabilities"])
    assert conf["token_endpoint"].startswith("http")


def test_audit_event_builder_validates() -> None:
    from phr_core.tokens import AccessToken

    token = AccessToken("sub-1", "app", frozenset(), 0, grant_id="g")
    event = build(Access(token, "", []), "read", "0", ["Observation/1"], {"p1"}, "/Observation?x=1")
    validate(event)


def _sqlite_files(world: World) -> list[Path]:
    url = world.settings.database_urls["fhir"]
    if not url.startswith("sqlite"):
        return []
    db = Path(url.split("///", 1)[1])
    return [p for p in db.parent.iterdir() if p.name.startswith(db.name)]


def test_database_holds_no_names_or_plain_bodies(world: World) -> None:
    bundle = family_bundle()
    p1 = bundle["entry"][0]["resource"]
    p1["name"] = [{"text": NAME_KANJI}, {"text": NAME_KANA}]
    p1["address"] = [{"text": "会津若松市東栄町3-46"}]
    bundle["entry"][3]["resource"]["note"] = [{"text": NOTE}]
    # names, addresses and notes are refused at the door (personal_data.py) ...
    assert world.post(world.connector(), bundle).status_code == 400
    # ... and text that gets in (a code's label can hold anything) is sealed like the rest
    bundle = family_bundle()
    label = f"{NAME_KANJI} {NAME_KANA} 会津若松市東栄町3-46 {NOTE}"
    bundle["entry"][3]["resource"]["code"]["text"] = label
    assert world.post(world.connector(), bundle).status_code == 200
    parent = world.user("sub-parent", codes=FAMILY)
    ids = ids_by_identifier(
        world.get("/Patient", parent).get_json() and {"entry": []}, {"entry": []}
    )
    assert ids == {}
    found = world.get("/Observation", parent).get_json()
    assert any(NAME_KANJI in json.dumps(e, ensure_ascii=False) for e in found["entry"])
    files = _sqlite_files(world)
    if not files:
        # PostgreSQL: look at the stored bytes through SQL instead of the files
        from sqlalchemy import text

        from phr_core.db import Database

        db = Database(world.settings.database_urls["fhir"])
        with db.engine.connect() as conn:
            dump = b"".join(
                bytes(r[0]) for r in conn.execute(text("SELECT body FROM fhir_resource"))
            )
            dump += b"".join(
                bytes(r[0]) for r in conn.execute(text("SELECT body FROM fhir_resource_version"))
            )
            dump += json.dumps(
                [list(map(str, r)) for r in conn.execute(text("SELECT * FROM fhir_token_index"))]
            ).encode()
        db.dispose()
    else:
        for f in files:  # checkpoint the WAL so nothing hides in it, then read every byte
            if f.suffix == ".db":
                sqlite3.connect(f).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        dump = b"".join(f.read_bytes() for f in files)
    for needle in (
        NAME_KANJI,
        NAME_KANA,
        "会津若松市東栄町",
        NOTE,
        '"resourceType"',
        '"valueQuantity"',
    ):
        assert needle.encode() not in dump, needle


def _app_with_master(world: World, env: dict[str, str], master: str) -> World:
    from phr_core.services import get_service
    from tests.conftest import create_app

    app = create_app(get_service("fhir"), load_settings(dict(env, PHR_FHIR_DATA_KEY=master)))
    app.extensions["phr_consent"] = world.consent
    return World(app, world.settings, world.issuer, world.consent)


def test_rotate_keys_rewraps_without_downtime(
    world: World, family: dict[str, str], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from launcher.cli import main

    parent = world.user("sub-parent", codes=FAMILY)
    ref = world.path(family["urn:uuid:o3"])
    old = world.settings.secret("PHR_FHIR_DATA_KEY")
    new = "new-master-key-" + "x" * 40
    env = dict(world.settings.environ)
    # step 1: servers restart with the new master first and the old one after it
    rolling = _app_with_master(world, env, f"{new} {old}")
    apps = [rolling]
    try:
        assert rolling.get(ref, parent).status_code == 200
        # step 2: rotate while they run
        for k, v in dict(env, PHR_FHIR_DATA_KEY=f"{new} {old}").items():
            monkeypatch.setenv(k, v)
        result = CliRunner().invoke(main, ["fhir", "rotate-keys", "--new-data-keys", "--reseal"])
        assert result.exit_code == 0, result.output
        assert "re-wrapped" in result.output and "re-sealed" in result.output
        assert rolling.get(ref, parent).status_code == 200
        assert rolling.get(ref + "/_history/1", parent).status_code == 200
        # step 3: the old secret can go; the new one alone opens everything
        fresh = _app_with_master(world, env, new)
        apps.append(fresh)
        assert fresh.get(ref, parent).status_code == 200
        assert fresh.get(ref + "/_history/1", parent).status_code == 200
        again = fresh.post(world.connector(), family_bundle()).get_json()
        assert all("outcome" in e["response"] for e in again["entry"])  # still "unchanged"
        # the old master alone can no longer open the data keys
        stale = _app_with_master(world, env, old)
        apps.append(stale)
        assert stale.get(ref, parent).status_code == 500
    finally:
        for w in apps:
            w.app.extensions["phr_audit"].close()
            w.app.extensions["phr_db"].dispose()
