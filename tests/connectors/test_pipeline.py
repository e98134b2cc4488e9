"""End to end against a real HTTP server on loopback (tests/connectors/stub_server.py,
implementing the PHR server's transaction contract): re-runs change nothing, corrected rows
update, crashes resume without loss or duplicates, retries, refused rows isolated, consent
gate."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.consent import StaticConsent
from connectors.http import TokenSource, TransportError, check_url
from connectors.mapping.common import full_url
from connectors.pipeline import Connector, Report, detect_source
from connectors.pseudonym import Pseudonymizer
from connectors.sent_cache import identity
from connectors.transport import FhirTransport
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.identifiers import pseudonym_system
from tests.connectors.helpers import CITY, KEY, codes_of, consents, make_city
from tests.connectors.stub_server import StubServer


@pytest.fixture
def city(tmp_path: Path) -> dict[str, Any]:
    return make_city(tmp_path / "inbox", n=500, months=1)


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with StubServer() as s:
        yield s


def _connector(
    files: dict[str, Any], server: StubServer, db: Database | None = None, **kw: Any
) -> Connector:
    tokens = TokenSource(server.url, "connector-test", "s3cret")
    kw.setdefault("consent", consents(files["consents"]))
    return Connector(
        CITY,
        Pseudonymizer(KEY),
        sink=FhirTransport(server.url, tokens, backoff=0.001, retries=kw.pop("retries", 5)),
        db=db,
        register_path=files["register"],
        report=Report(io.StringIO()),
        batch_size=kw.pop("batch_size", 100),
        **kw,
    )


def _inputs(files: dict[str, Any]) -> list[Path]:
    folder = Path(files["register"]).parent
    return [p for p in sorted(folder.iterdir()) if detect_source(p)]


def _run_all(c: Connector, files: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for p in _inputs(files):
        s = c.run_file(p)
        for k, v in vars(s).items():
            total[k] = total.get(k, 0) + v
    return total


def test_rerun_changes_nothing_and_corrected_row_updates(
    city: dict[str, Any], server: StubServer
) -> None:
    first = _run_all(_connector(city, server), city)
    assert first["created"] > 0 and first["rejected"] == 0
    snapshot = json.dumps(sorted(server.state.store.items()), sort_keys=True, default=str)
    count = len(server.state.store)

    second = _run_all(_connector(city, server), city)
    assert second["created"] == 0 and second["updated"] == 0
    assert second["unchanged"] == first["created"] + first["updated"] + first["unchanged"]
    assert json.dumps(sorted(server.state.store.items()), sort_keys=True, default=str) == snapshot

    # Correct one consented row's weight in the MCH export: the same resource is updated.
    mch = Path(city["mch"])
    rows = list(csv.reader(io.StringIO(mch.read_text(encoding="cp932"))))
    consented = set(consents(city["consents"]).codes("mch"))
    codes = codes_of(city["register"])
    i = next(
        n
        for n, r in enumerate(rows[1:], 1)
        if r[1] == "妊婦健診" and codes[r[2]] in consented and r[9]
    )
    rows[i][9] = f"{float(rows[i][9]) + 1.5:.1f}"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    mch.write_bytes(buf.getvalue().encode("cp932"))
    s = _connector(city, server).run_file(mch)
    assert (s.created, s.updated) == (0, 1)
    assert len(server.state.store) == count


def test_people_without_consent_are_never_converted_or_sent(
    city: dict[str, Any], server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = codes_of(city["register"])
    everyone = sorted(set(codes.values()))
    allowed = set(everyone[: len(everyone) // 10])
    refused = set(everyone) - allowed
    mapped: list[str] = []

    from connectors.mapping import mch, uke, vaccination

    for mod in (mch, uke, vaccination):
        orig = mod.map_record

        def spy(ctx: Any, rec: Any, code: str, *a: Any, _orig: Any = orig) -> Any:
            mapped.append(code)
            return _orig(ctx, rec, code, *a)

        monkeypatch.setattr(mod, "map_record", spy)
    server.state.keep_bodies = True
    c = _connector(
        city, server, consent=StaticConsent({k: allowed for k in ("mch", "immunization", "claims")})
    )
    total = _run_all(c, city)
    assert total["skipped_no_consent"] > 0 and total["sent"] > 0
    assert set(mapped) <= allowed and mapped
    sent = json.dumps(server.state.bodies)
    assert not [code for code in refused if code in sent]
    # What the PHR server now holds belongs to consented people only.
    stored = json.dumps(list(server.state.store.values()))
    assert not [code for code in refused if code in stored]


def test_retry_on_server_errors(city: dict[str, Any], server: StubServer) -> None:
    server.state.fail_next = 3
    s = _connector(city, server).run_file(Path(city["vaccination"]))
    assert s.sent > 0 and s.rejected == 0
    assert server.state.fail_next == 0


def test_crash_mid_run_resumes_without_loss_or_duplicates(
    city: dict[str, Any], server: StubServer, migrated: Settings, tmp_path: Path
) -> None:
    db = Database(migrated.database_urls["connector"])
    mch = Path(city["mch"])
    # Reference: a clean run into a separate server.
    with StubServer() as ref:
        want = _connector(city, ref).run_file(mch)
        want_store = dict(ref.state.store)
    assert want.sent > 0

    # The server goes away after 2 transactions; the run stops with the checkpoint at batch 2.
    server.state.fail_after = 2
    acked: list[int] = []
    c = _connector(city, server, db=db, retries=1, on_batch=acked.append)
    with pytest.raises(TransportError):
        c.run_file(mch)
    assert len(acked) == 2
    server.state.fail_after = None
    tx_before = server.state.transactions

    again = _connector(city, server, db=db).run_file(mch)
    # Nothing lost, nothing duplicated: the store equals the clean run's, the counters match,
    # and the resumed run did not resend the two acknowledged batches.
    assert server.state.store == want_store
    assert (again.read, again.sent, again.skipped_no_consent) == (
        want.read,
        want.sent,
        want.skipped_no_consent,
    )
    assert again.created == want.created
    assert server.state.transactions - tx_before < want_store.__len__()
    from sqlalchemy import select

    from connectors.models import Checkpoint, Run

    with db.session() as s:
        cp = s.scalars(select(Checkpoint)).one()
        assert cp.status == "done"
        statuses = [r.status for r in s.scalars(select(Run).order_by(Run.id))]
        assert statuses == ["failed", "done"]
    db.dispose()


def test_refused_row_is_isolated_and_reported(city: dict[str, Any], server: StubServer) -> None:
    vacc = Path(city["vaccination"])
    consented = set(consents(city["consents"]).codes("immunization"))
    codes = codes_of(city["register"])
    rows = list(csv.reader(io.StringIO(vacc.read_text(encoding="utf-8"))))
    i = next(n for n, r in enumerate(rows[1:], 1) if codes[r[1]] in consented)
    rows[i][6] = "reject-me"  # the stub server refuses a transaction containing this lot number
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    vacc.write_text(buf.getvalue(), encoding="utf-8")
    rep = io.StringIO()
    c = _connector(city, server)
    c.report = Report(rep)
    s = c.run_file(vacc)
    assert s.rejected == 1
    lines = rep.getvalue().splitlines()
    assert lines[0] == "file,line,field,reason"
    # the field is the element the server's OperationOutcome pointed at
    assert lines[1].startswith(
        f"vaccination.csv,{i + 1},Immunization,refused by the PHR server (processing"
    )
    assert "reject-me" not in rep.getvalue()
    ok_rows = sum(1 for r in rows[1:] if codes[r[1]] in consented) - 1
    assert s.sent == ok_rows


def test_plain_http_only_to_loopback() -> None:
    check_url("http://127.0.0.1:8002")
    check_url("http://localhost:8002")
    check_url("https://phr.example.jp")
    with pytest.raises(ValueError, match="https"):
        check_url("http://phr.example.jp")


def test_token_refresh_on_401(city: dict[str, Any], server: StubServer) -> None:
    c = _connector(city, server)
    c.run_file(Path(city["vaccination"]))
    issued = server.state.token_requests
    server.state.tokens.clear()  # every issued token is now invalid
    s = c.run_file(Path(city["vaccination"]))
    assert s.rejected == 0 and s.unchanged > 0
    assert server.state.token_requests == issued + 1


def test_sent_cache_makes_the_unchanged_rerun_send_nothing(
    city: dict[str, Any], server: StubServer, migrated: Settings
) -> None:
    db = Database(migrated.database_urls["connector"])
    first = _run_all(_connector(city, server, db=db), city)
    assert first["sent"] > 0
    tx = server.state.transactions
    second = _run_all(_connector(city, server, db=db), city)
    assert server.state.transactions == tx  # nothing sent
    assert second["sent"] == 0 and second["skipped_unchanged"] == first["sent"]

    # A consent withdrawn and given again: that person's resources are forgotten locally and
    # sent again on the next run (the server may have deleted them meanwhile).
    data = {k: set(v) for k, v in json.loads(Path(city["consents"]).read_text("utf-8")).items()}
    codes = codes_of(city["register"])
    rows = list(csv.reader(io.StringIO(Path(city["vaccination"]).read_text(encoding="utf-8"))))
    someone = next(codes[r[1]] for r in rows[1:] if codes[r[1]] in data["immunization"])
    without = StaticConsent({k: v - {someone} for k, v in data.items()})
    _connector(city, server, db=db, consent=without)  # start of a run: evicts
    again = _connector(city, server, db=db).run_file(Path(city["vaccination"]))
    assert again.sent >= 1 and again.created == 0 and again.unchanged >= 1

    # --full: everything again, the server answers unchanged.
    full = _connector(city, server, db=db, use_cache=False).run_file(Path(city["vaccination"]))
    assert full.skipped_unchanged == 0 and full.sent == first_vacc_rows(city)
    db.dispose()


def first_vacc_rows(city: dict[str, Any]) -> int:
    consented = set(consents(city["consents"]).codes("immunization"))
    codes = codes_of(city["register"])
    rows = list(csv.reader(io.StringIO(Path(city["vaccination"]).read_text(encoding="utf-8"))))
    return sum(1 for r in rows[1:] if codes[r[1]] in consented)


class OverlapWatch:
    """A sink in front of the stub server that sees which batches are in flight together and
    flags any identity the server does not hold yet that two of them carry at once (two
    conditional creates of one resource could race on a real server)."""

    def __init__(self, inner: FhirTransport) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.inflight: list[set[str]] = []
        self.stored: set[str] = set()
        self.most = 0
        self.clashes: list[set[str]] = []

    def send(self, entries: list[Any]) -> Any:
        ids = {identity(e) for e in entries}
        with self.lock:
            for other in self.inflight:
                if (ids & other) - self.stored:
                    self.clashes.append((ids & other) - self.stored)
            self.inflight.append(ids)
            self.most = max(self.most, len(self.inflight))
        try:
            time.sleep(0.005)  # let batches overlap
            return self.inner.send(entries)
        finally:
            with self.lock:
                self.inflight.remove(ids)
                self.stored |= ids


def test_parallel_sends_load_the_same_and_never_race(
    city: dict[str, Any], server: StubServer
) -> None:
    with StubServer() as ref:
        want = _run_all(_connector(city, ref, batch_size=40), city)
        want_store = dict(ref.state.store)
    c = _connector(city, server, batch_size=40, parallel=3)
    watch = OverlapWatch(c.sink)  # type: ignore[arg-type]
    c.sink = watch
    got = _run_all(c, city)
    assert watch.most >= 2  # batches were in flight together
    assert watch.clashes == []  # but never two carrying a resource not stored yet
    assert server.state.store == want_store
    assert got == want


def test_parallel_crash_resumes_without_loss_or_duplicates(
    city: dict[str, Any], server: StubServer, migrated: Settings
) -> None:
    db = Database(migrated.database_urls["connector"])
    mch = Path(city["mch"])
    with StubServer() as ref:
        want = _connector(city, ref).run_file(mch)
        want_store = dict(ref.state.store)
    server.state.fail_after = 3
    acked: list[int] = []
    c = _connector(city, server, db=db, retries=1, on_batch=acked.append, parallel=3)
    with pytest.raises(TransportError):
        c.run_file(mch)
    assert acked == sorted(acked) and len(acked) <= 3  # checkpoints only in file order
    server.state.fail_after = None
    again = _connector(city, server, db=db, parallel=3).run_file(mch)
    assert server.state.store == want_store
    assert (again.read, again.sent) == (want.read, want.sent)
    db.dispose()


def test_reconsent_after_deletion_between_runs_sends_everything_again(
    city: dict[str, Any], server: StubServer, migrated: Settings
) -> None:
    """A person withdraws, has the records deleted and consents again, all between two runs:
    the connector never sees the withdrawal, only that the consent service's `since` for that
    person moved; their records must be sent again (the sent cache says they are stored)."""
    db = Database(migrated.database_urls["connector"])
    data = {k: set(v) for k, v in json.loads(Path(city["consents"]).read_text("utf-8")).items()}
    codes = codes_of(city["register"])
    rows = list(csv.reader(io.StringIO(Path(city["vaccination"]).read_text(encoding="utf-8"))))
    someone = next(codes[r[1]] for r in rows[1:] if codes[r[1]] in data["immunization"])
    mine = sum(1 for r in rows[1:] if codes[r[1]] == someone)

    def consent(since: str) -> StaticConsent:
        epochs = {cat: {c: "2026-04-01T00:00:00Z" for c in cs} for cat, cs in data.items()}
        for cat in epochs:
            if someone in epochs[cat]:
                epochs[cat][someone] = since
        return StaticConsent(data, epochs)

    vacc = Path(city["vaccination"])
    first = _connector(city, server, db=db, consent=consent("2026-04-01T00:00:00Z")).run_file(vacc)
    assert first.sent > 0

    # The PHR server erases the person's records (the portal's "delete my data").
    urn = full_url("Patient", pseudonym_system(CITY), someone)

    def held() -> list[dict[str, Any]]:
        return [r for r in server.state.resources() if urn in json.dumps(r)]

    assert len(held()) == mine  # their Immunizations (the stub keeps references as sent)
    with server.state.lock:
        for key, res in list(server.state.store.items()):
            if urn in json.dumps(res) or any(
                i.get("value") == someone for i in res.get("identifier", [])
            ):
                del server.state.store[key]
    assert held() == []

    # Same consent as before: the cache rightly sends nothing (this is the bug's setting).
    same = _connector(city, server, db=db, consent=consent("2026-04-01T00:00:00Z")).run_file(vacc)
    assert same.sent == 0 and same.skipped_unchanged == first.sent

    # Consent given anew (a later `since`): everything of that person goes again, and the
    # server holds their records again; nobody else's are resent.
    again = _connector(city, server, db=db, consent=consent("2026-11-26T09:00:00Z")).run_file(vacc)
    assert again.sent == mine and again.created >= mine
    assert again.skipped_unchanged == first.sent - mine
    assert any(
        any(i.get("value") == someone for i in r.get("identifier", []))
        for r in server.state.resources("Patient")
    )
    assert len(held()) == mine

    # And the next run with that same `since` sends nothing again.
    after = _connector(city, server, db=db, consent=consent("2026-11-26T09:00:00Z")).run_file(vacc)
    assert after.sent == 0
    db.dispose()


def test_one_send_at_a_time_and_several_in_flight_keep_the_same_books(
    city: dict[str, Any], migrated: Settings
) -> None:
    """Both send modes go through one bookkeeping path: with refused rows among the batches,
    every checkpoint (its line and counters), the summary, the run row and the rejected rows
    are the same whether one transaction or three are in flight."""
    from sqlalchemy import delete, select

    from connectors.models import Checkpoint, Run, SentResource
    from connectors.models import RowError as RowErrorRow

    vacc = Path(city["vaccination"])
    consented = set(consents(city["consents"]).codes("immunization"))
    codes = codes_of(city["register"])
    rows = list(csv.reader(io.StringIO(vacc.read_text(encoding="utf-8"))))
    poisoned = [n for n, r in enumerate(rows[1:], 1) if codes[r[1]] in consented][3::7][:6]
    for n in poisoned:
        rows[n][6] = "reject-me"  # the stub server refuses a transaction holding this lot
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    vacc.write_text(buf.getvalue(), encoding="utf-8")
    db = Database(migrated.database_urls["connector"])

    def books(parallel: int) -> tuple[Any, ...]:
        with db.session() as s:  # a fresh sent cache, so both runs send everything
            s.execute(delete(SentResource))
        seen: list[tuple[int, str, str]] = []

        def checkpoint(line: int) -> None:
            with db.session() as s:
                cp = s.scalars(select(Checkpoint)).one()
                seen.append((line, cp.status, cp.counters))

        with StubServer() as server:
            c = _connector(city, server, db=db, batch_size=30, parallel=parallel)
            c.on_batch = checkpoint
            summary = c.run_file(vacc)
        with db.session() as s:
            cp = s.scalars(select(Checkpoint)).one()
            run = s.scalars(select(Run).order_by(Run.id.desc())).first()
            assert run is not None
            errors = sorted(
                (e.line, e.field, e.reason)
                for e in s.scalars(select(RowErrorRow).where(RowErrorRow.run_id == run.id))
            )
            final = (cp.line, cp.status, cp.counters)
            ran = (run.status, run.rows_read, run.rows_sent, run.rows_rejected)
        return vars(summary), seen, final, ran, errors

    one = books(1)
    three = books(3)
    assert one[0]["rejected"] == len(poisoned) and one[0]["sent"] > 0
    assert len(one[1]) > 3  # several batches, each checkpointed
    assert [e[0] for e in one[4]] == [n + 1 for n in poisoned]  # file lines (header is 1)
    assert three == one
    db.dispose()
