"""Issue 20: what `phr connector run` leaves for Prometheus (connectors.run_metrics): the last
run's rows and outcome, the totals, and the last success, which a failed run keeps."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from launcher.cli import main
from phr_core.config import load_settings
from tests.connectors.test_cli import env  # noqa: F401 - the stub servers and environment


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(path.read_text(encoding="utf-8"))
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "municipality"))): s.value
        for f in families
        for s in f.samples
    }


def test_runs_leave_their_figures_for_the_textfile_collector(env) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    srv, inbox = env
    path = Path(load_settings().option("PHR_CONNECTOR_METRICS_FILE"))
    runner = CliRunner()
    assert (
        runner.invoke(main, ["connector", "synth", "--residents", "60", "--months", "1"]).exit_code
        == 0
    )
    consent = str(inbox / "consents.json")
    dry = runner.invoke(main, ["connector", "run", "--dry-run", "--consent-file", consent])
    assert dry.exit_code == 0 and not path.exists()  # a dry run is no run

    first = runner.invoke(main, ["connector", "run", "--consent-file", consent])
    assert first.exit_code == 0, first.output
    ok = _samples(path)
    assert ok[("phr_connector_runs_total", (("outcome", "ok"),))] == 1
    assert ok[("phr_connector_last_run_success", ())] == 1
    read = ok[("phr_connector_last_run_rows", (("kind", "read"),))]
    sent = ok[("phr_connector_last_run_rows", (("kind", "sent"),))]
    assert read > 0 and 0 < sent <= read
    success = ok[("phr_connector_last_success_timestamp_seconds", ())]

    srv.state.jwk = None  # the IdP no longer knows the connector's key: no token, no run
    down = runner.invoke(main, ["connector", "run", "--consent-file", consent, "--full"])
    assert down.exit_code == 2
    stopped = _samples(path)
    assert stopped[("phr_connector_runs_total", (("outcome", "ok"),))] == 1
    assert stopped[("phr_connector_runs_total", (("outcome", "stopped"),))] == 1
    assert stopped[("phr_connector_last_run_success", ())] == 0
    assert stopped[("phr_connector_last_success_timestamp_seconds", ())] == success  # kept
    assert stopped[("phr_connector_rows_total", (("kind", "read"),))] >= read
