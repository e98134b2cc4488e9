"""`phr connector synth | run | link` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.client_key import load_signing_key, public_jwk
from launcher.cli import main
from phr_core.config import Settings
from tests.connectors.helpers import KEY
from tests.connectors.stub_server import StubServer

SIGNING_KEY = "connector-signing-key-for-tests-0123456789"


@pytest.fixture
def env(
    environ: dict[str, str], migrated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):  # type: ignore[no-untyped-def]
    with StubServer() as srv:
        srv.state.jwk = public_jwk(load_signing_key(SIGNING_KEY))
        values = {
            **environ,
            "PHR_CONNECTOR_PSEUDONYM_KEY": KEY,
            "PHR_CONNECTOR_CLIENT_ID": "connector-test",
            "PHR_CONNECTOR_SIGNING_KEY": SIGNING_KEY,
            "PHR_CONNECTOR_INBOX": str(tmp_path / "inbox"),
            "PHR_FHIR_URL": srv.url,
            "PHR_ISSUER": srv.url,
            "PHR_CONSENT_URL": srv.url,
        }
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        yield srv, tmp_path / "inbox"


def test_synth_run_rerun_and_rejections(env) -> None:  # type: ignore[no-untyped-def]
    srv, inbox = env
    runner = CliRunner()
    r = runner.invoke(main, ["connector", "synth", "--residents", "300", "--months", "1"])
    assert r.exit_code == 0, r.output
    consent = str(inbox / "consents.json")

    dry = runner.invoke(main, ["connector", "run", "--dry-run", "--consent-file", consent])
    assert dry.exit_code == 0, dry.output
    assert "dry run: total: read" in dry.output and not srv.state.store

    first = runner.invoke(main, ["connector", "run", "--consent-file", consent])
    assert first.exit_code == 0, first.output
    assert srv.state.store
    tx = srv.state.transactions
    second = runner.invoke(main, ["connector", "run", "--consent-file", consent])
    assert second.exit_code == 0
    assert ", sent 0 rows" in second.output.splitlines()[-1]
    assert srv.state.transactions == tx  # the sent cache knows it is all there already
    full = runner.invoke(main, ["connector", "run", "--consent-file", consent, "--full"])
    assert full.exit_code == 0
    assert "created 0, updated 0, unchanged" in full.output.splitlines()[-1]

    with (inbox / "vaccination.csv").open("a", encoding="utf-8") as fh:
        fh.write("V999,1000000001,2025-02-30,MR,1期,1,,,\n")
    report = inbox.parent / "report.csv"
    bad = runner.invoke(
        main, ["connector", "run", "--consent-file", consent, "--report", str(report)]
    )
    assert bad.exit_code == 1
    assert "1 rows rejected" in bad.output
    lines = report.read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith("vaccination.csv,") and ",接種日,not a date" in lines[1]

    srv.state.fail_after = 0
    down = runner.invoke(
        main, ["connector", "run", "--consent-file", consent, "--full", "--report", str(report)]
    )
    assert down.exit_code == 2 and "run again to resume" in down.output


def test_consents_from_the_consent_service(env) -> None:  # type: ignore[no-untyped-def]
    srv, inbox = env
    runner = CliRunner()
    assert (
        runner.invoke(main, ["connector", "synth", "--residents", "200", "--months", "1"]).exit_code
        == 0
    )
    import json

    srv.state.consents = json.loads((inbox / "consents.json").read_text(encoding="utf-8"))
    r = runner.invoke(main, ["connector", "run"])
    assert r.exit_code == 0, r.output
    assert srv.state.store
    link = runner.invoke(main, ["connector", "link", "--register", str(inbox / "register.csv")])
    assert link.exit_code == 0 and "0 matched (0 children named), 0 no match" in link.output


def test_sending_leaves_validation_to_the_server_by_default(env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import connectors.pipeline as pipeline

    srv, inbox = env
    runner = CliRunner()
    r = runner.invoke(main, ["connector", "synth", "--residents", "300", "--months", "1"])
    assert r.exit_code == 0, r.output
    calls: list[str] = []
    real = pipeline.validate
    monkeypatch.setattr(pipeline, "validate", lambda res: (calls.append("v"), real(res)))
    consent = str(inbox / "consents.json")
    args = ["connector", "run", "--consent-file", consent]
    sent = runner.invoke(main, args)
    assert sent.exit_code == 0, sent.output
    assert srv.state.store and calls == []  # loaded, and the connector validated nothing
    dry = runner.invoke(main, [*args, "--no-local-validation", "--dry-run"])
    assert dry.exit_code == 0 and calls  # a dry run always validates
    calls.clear()
    again = runner.invoke(main, [*args, "--local-validation", "--full"])
    assert again.exit_code == 0 and calls  # asked for: the connector checks before sending


def test_run_over_several_files_continues_past_a_broken_one(env) -> None:  # type: ignore[no-untyped-def]
    """A circled digit in a UKE numeric field once ended `phr connector run` with a traceback,
    and the later files were never loaded (issue 21). Now the receipt is reported, a file no
    reader fits is reported, every other file loads, and the exit code says something failed."""
    srv, inbox = env
    runner = CliRunner()
    r = runner.invoke(main, ["connector", "synth", "--residents", "300", "--months", "1"])
    assert r.exit_code == 0, r.output
    uke = sorted(inbox.glob("RECEIPTC_*.UKE"))[0]
    lines = uke.read_bytes().decode("cp932").split("\r\n")
    ho = next(i for i, x in enumerate(lines) if x.startswith("HO,"))
    cells = lines[ho].split(",")
    cells[4] = "①"  # HO 診療実日数
    lines[ho] = ",".join(cells)
    uke.write_bytes("\r\n".join(lines).encode("cp932"))
    notes = inbox / "notes.txt"
    notes.write_text("申し送り: 福島県会津若松市〒\n", encoding="utf-8")
    report = inbox.parent / "report.csv"
    files = [str(uke), str(notes), str(inbox / "vaccination.csv"), str(inbox / "mch.csv")]
    consent = str(inbox / "consents.json")
    run = runner.invoke(
        main, ["connector", "run", "--consent-file", consent, "--report", str(report), *files]
    )
    assert run.exception is None or isinstance(run.exception, SystemExit), run.exception
    assert run.exit_code == 1, run.output
    assert f"{uke.name} [uke]: read" in run.output
    assert "vaccination.csv [vaccination]: read" in run.output
    assert "mch.csv [mch]: read" in run.output
    assert "notes.txt: not loaded" in run.output
    kinds = {key[0] for key in srv.state.store}
    assert {"Immunization", "ExplanationOfBenefit", "Observation"} <= kinds
    rows = report.read_text(encoding="utf-8").splitlines()
    assert f"{uke.name},{ho + 1},HO.診療実日数,not a whole number" in rows
    assert "notes.txt,0,-,no reader for this file" in rows
    assert "①" not in report.read_text(encoding="utf-8") and "〒" not in report.read_text("utf-8")


def test_empty_and_truncated_exports_exit_non_zero(env) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: a failed export (an empty file, a UKE file cut before its GO record) is an
    error with its file and line, and `phr connector run` exits 1, also on a dry run."""
    _srv, inbox = env
    inbox.mkdir(parents=True, exist_ok=True)
    consent = inbox.parent / "consents.json"
    consent.write_text('{"mch": [], "immunization": [], "claims": []}', encoding="utf-8")
    report = inbox.parent / "report.csv"
    runner = CliRunner()
    for name, content in [
        ("RECEIPTC.UKE", b""),
        (
            "RECEIPTC.UKE",
            b"IR,2,07,1,1234567,,\x83e\x83X\x83g,202504,00,\r\n" + b"RE,1" + b"," * 36,
        ),
        ("vaccination.csv", b""),
    ]:
        for old in inbox.iterdir():
            old.unlink()
        (inbox / name).write_bytes(content)
        args = ["connector", "run", "--dry-run", "--consent-file", str(consent)]
        r = runner.invoke(main, [*args, "--report", str(report), str(inbox / name)])
        assert r.exit_code == 1, r.output
        rows = report.read_text(encoding="utf-8").splitlines()[1:]
        if content.startswith(b"IR"):  # the truncated file: its real last line, not line 0
            assert any(x.startswith(f"{name},2,GO,file ends without a GO") for x in rows), rows
        elif name.endswith(".UKE"):
            assert rows and all(x.startswith(f'{name},1,-,"the file is empty') for x in rows), rows
        else:  # an empty CSV has no header to recognise it by
            assert rows == [f"{name},0,-,no reader for this file"], rows
