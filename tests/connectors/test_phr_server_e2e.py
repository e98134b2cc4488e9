"""End to end against the real PHR server (phr_server, served over HTTP on loopback) with an
IdP stand-in that issues client-credentials tokens (client_secret_basic → RFC 9068 JWT with the
connector's municipality): a synthetic city loads, a re-run changes nothing, and only consented
people are in the server."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from connectors.http import TokenSource
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.transport import FhirTransport
from phr_core.config import Settings
from tests.browser import live_server
from tests.conftest import make_environ
from tests.connectors.helpers import CITY, KEY, codes_of, consents, make_city

CLIENT = f"connector-{CITY}"
SECRET = "connector-secret-for-tests"


@pytest.fixture
def idp() -> Iterator[dict[str, Any]]:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    app = Flask("idp_stand_in")
    state: dict[str, Any] = {"issued": 0}

    @app.get("/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return jsonify(KeySet([key]).as_dict(private=False))

    @app.post("/token")
    def token():  # type: ignore[no-untyped-def]
        want = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != want:
            return jsonify(error="invalid_client"), 401
        if request.form.get("grant_type") != "client_credentials":
            return jsonify(error="unsupported_grant_type"), 400
        now = int(time.time())
        claims = {
            "iss": state["iss"],
            "aud": state["aud"],
            "sub": CLIENT,
            "client_id": CLIENT,
            "scope": "system/*.write",
            "municipality": CITY,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        state["issued"] += 1
        tok = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, claims, key)
        return jsonify(access_token=tok, token_type="Bearer", expires_in=300)

    with live_server(app) as url:
        state["iss"] = url
        yield state


@pytest.fixture
def environ(tmp_path: Path, database_url: str, idp: dict[str, Any]) -> dict[str, str]:
    return make_environ(tmp_path, database_url, PHR_ISSUER=idp["iss"])


def test_synthetic_city_loads_into_the_phr_server(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip("phr_server.transaction")
    from phr_server.models import StoredResource
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=300, months=1)
    inputs = [p for p in sorted((tmp_path / "inbox").iterdir()) if detect_source(p)]

    def load(url: str) -> dict[str, int]:
        tokens = TokenSource(idp["iss"], CLIENT, SECRET)
        c = Connector(
            CITY,
            Pseudonymizer(KEY),
            consents(files["consents"]),
            FhirTransport(url, tokens),
            register_path=files["register"],
            report=Report(io.StringIO()),
        )
        total: dict[str, int] = {}
        for p in inputs:
            for k, v in vars(c.run_file(p)).items():
                total[k] = total.get(k, 0) + v
        return total

    with live_server(app) as url:
        first = load(url)
        assert first["rejected"] == 0, first
        assert first["created"] > 0 and first["sent"] > 0
        second = load(url)
        assert second["rejected"] == 0
        assert (second["created"], second["updated"]) == (0, 0)
        assert second["unchanged"] == first["created"] + first["updated"] + first["unchanged"]

    db = app.extensions["phr_db"]
    with db.session() as s:
        stored = s.scalars(select(StoredResource)).all()
        n_patients = sum(1 for r in stored if r.resource_type == "Patient")
    consented = set().union(
        *(consents(files["consents"]).codes(c) for c in ("mch", "immunization", "claims"))
    )
    assert 0 < n_patients <= len(consented)
    assert len(set(codes_of(files["register"]).values()) - consented) > 0  # some did not consent
    assert json.dumps(first)  # summary is plain data


# --- issue 21: one poisoned row or entry never blocks a load ------------------------------


class _Rewrite:
    """A sink in front of the real transport that changes the Immunization of rows whose lot
    number is `lot` (what a future mapping bug or a hand-edited export could send)."""

    def __init__(self, inner: FhirTransport, lot: str, **change: Any) -> None:
        self.inner, self.lot, self.change = inner, lot, change

    def send(self, entries: list[Any]) -> Any:
        for e in entries:
            if e.resource_type == "Immunization" and e.resource.get("lotNumber") == self.lot:
                e.resource.update(self.change)
        return self.inner.send(entries)


class _FailOn:
    """WSGI middleware in front of the real PHR server: a 500 for any request whose body holds
    `marker` (a bug the server has on one entry's content), everything else passes."""

    def __init__(self, app: Any, marker: bytes) -> None:
        self.app, self.marker, self.failed = app, marker, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        if self.marker in body:
            self.failed += 1
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])
            return [b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
                    b'"code":"exception"}]}']  # fmt: skip
        return self.app(environ, start_response)


def _vaccination_with(tmp_path: Path, files: dict[str, Any], lots: dict[str, str]) -> Path:
    """The city's vaccination export with consented rows given the lot numbers `lots` (lot →
    接種日, "" keeps the date); every other row as it was."""
    rows = list(csv.reader(io.StringIO(Path(files["vaccination"]).read_text(encoding="utf-8"))))
    consented = consents(files["consents"]).codes("immunization")
    codes = codes_of(files["register"])
    mine = [r for r in rows[1:] if codes[r[1]] in consented]
    assert len(mine) > 2 * len(lots)
    for row, (lot, when) in zip(mine[1::2], lots.items(), strict=False):
        row[6] = lot
        if when:
            row[2] = when
    out = tmp_path / "poisoned" / "vaccination.csv"
    out.parent.mkdir(exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


def _immunizations(app: Flask) -> list[dict[str, Any]]:
    from phr_server.models import StoredResource

    with app.extensions["phr_db"].session() as s:
        n = s.scalars(select(StoredResource).where(StoredResource.resource_type == "Immunization"))
        return list(n)


def test_a_9999_date_reaches_neither_a_500_nor_a_blocked_run(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    """`9999-12-31` in an export is refused at the reader (a row error, the rest loads); the
    same date sent anyway (here by a sink that rewrites one row) is stored, not a 500."""
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=200, months=1, share=0.6)
    path = _vaccination_with(tmp_path, files, {"OPEN-END": "9999-12-31", "SENT-ANYWAY": ""})
    consented = consents(files["consents"])
    with live_server(app) as url:
        sink = _Rewrite(
            FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET), backoff=0.001),
            "SENT-ANYWAY",
            occurrenceDateTime="9999-12-31",
        )
        report = io.StringIO()
        c = Connector(
            CITY, Pseudonymizer(KEY), consented, sink, register_path=files["register"],
            report=Report(report), batch_size=40,
        )  # fmt: skip
        s = c.run_file(path)
        assert s.rejected == 1
        assert report.getvalue().splitlines()[1].split(",")[2:4] == [
            "接種日",
            "outside 1868–2199 (a placeholder?)",
        ]
        stored = _immunizations(app)
        assert len(stored) == s.sent  # every other consented row is in the server
    from phr_server.dates import parse_range
    from phr_server.models import DateIndex

    with app.extensions["phr_db"].session() as db:
        late = db.scalars(
            select(DateIndex).where(
                DateIndex.resource_type == "Immunization",
                DateIndex.start_us == parse_range("9999-12-31")[0],
            )
        ).all()
        assert len(late) == 1  # stored and indexed, findable by date=9999-12-31


def test_refused_and_failing_entries_are_isolated_by_the_real_server(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    """A row the server refuses (400 at Immunization.status) and a row it fails on (a 500 that
    repeats while it handles everything else) are each split off, reported and skipped; every
    other row is stored, and a rerun does not resend what was stored."""
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    failing = _FailOn(app.wsgi_app, b"POISON-500")
    app.wsgi_app = failing  # type: ignore[method-assign]
    files = make_city(tmp_path / "inbox", n=200, months=1, share=0.6)
    path = _vaccination_with(tmp_path, files, {"BAD-STATUS": "", "POISON-500": ""})
    with live_server(app) as url:
        sink = _Rewrite(
            FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET), backoff=0.001),
            "BAD-STATUS",
            status="bogus",
        )
        report = io.StringIO()
        c = Connector(
            CITY, Pseudonymizer(KEY), consents(files["consents"]), sink,
            register_path=files["register"], report=Report(report), batch_size=40,
        )  # fmt: skip
        s = c.run_file(path)
        assert s.rejected == 2 and failing.failed >= 2
        lines = sorted(x.split(",", 2)[2] for x in report.getvalue().splitlines()[1:])
        assert lines[0] == "-,refused by the PHR server (the PHR server failed on it (HTTP 500))"
        assert lines[1].startswith("Immunization.status,refused by the PHR server (code-invalid")
        assert len(_immunizations(app)) == s.sent


class _Counting:
    """A sink that counts the transactions sent through it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sent = inner, 0

    def send(self, entries: list[Any]) -> Any:
        self.sent += 1
        return self.inner.send(entries)


def test_rows_the_server_names_are_split_off_in_a_few_sends(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    """The server's OperationOutcome names every bad entry of a refused transaction: each row
    holding one is sent alone (and rejected only when refused alone), the rows between them
    whole, so two bad rows in a batch cost five more sends instead of the twelve of halving."""
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=200, months=1, share=0.6)
    path = _vaccination_with(tmp_path, files, {"BAD-ONE": "", "BAD-TWO": ""})
    with live_server(app) as url:
        transport = FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET), backoff=0.001)
        counted = _Counting(
            _Rewrite(_Rewrite(transport, "BAD-ONE", status="bogus"), "BAD-TWO", status="bogus")
        )
        report = io.StringIO()
        c = Connector(
            CITY, Pseudonymizer(KEY), consents(files["consents"]), counted,
            register_path=files["register"], report=Report(report), batch_size=40, parallel=1,
        )  # fmt: skip
        batches: list[int] = []
        c.on_batch = batches.append
        s = c.run_file(path)
    assert s.rejected == 2 and s.sent == len(_immunizations(app)) > 0
    reasons = [x.split(",", 2)[2] for x in report.getvalue().splitlines()[1:]]
    assert all(r.startswith("Immunization.status,refused by the PHR server") for r in reasons)
    # both bad rows are in the first batch: its refusal, then [row] [bad] [row] [bad] [the rest]
    # (halving took 7 more sends here)
    assert counted.sent == len(batches) + 5


def test_a_server_failing_on_every_row_stops_the_run_instead_of_rejecting_them(
    app_factory: Callable[[str], Flask], migrated: Settings, idp: dict[str, Any], tmp_path: Path
) -> None:
    """When every part of a split batch fails with 500 the server is at fault, not the rows:
    the run stops to resume later (nothing is reported as a bad row), and resumes once fixed."""
    from connectors.http import TransportError
    from phr_server.policy import InMemoryConsentDirectory

    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    real = app.wsgi_app
    app.wsgi_app = _FailOn(real, b"Immunization")  # type: ignore[method-assign]
    files = make_city(tmp_path / "inbox", n=200, months=1, share=0.6)
    with live_server(app) as url:
        c = Connector(
            CITY, Pseudonymizer(KEY), consents(files["consents"]),
            FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET), backoff=0.001),
            register_path=files["register"], report=Report(io.StringIO()), batch_size=40,
        )  # fmt: skip
        with pytest.raises(TransportError, match="every row"):
            c.run_file(Path(files["vaccination"]))
        assert c.report.problems == []
        app.wsgi_app = real  # type: ignore[method-assign]
        s = c.run_file(Path(files["vaccination"]))
        assert s.rejected == 0 and s.sent == len(_immunizations(app)) > 0
