"""Issue 20: the example alert rules (docs/alerts/phr.rules.yml) are well-formed Prometheus
rule groups, and every metric they name is one the platform exposes: a service's /metrics, or
the file a connector run leaves (promtool is not installed here; this checks what it would
check of the names, and the shape)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from connectors.report import Summary
from connectors.run_metrics import LastRun
from tests.phr_core.test_metrics import _app

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "alerts" / "phr.rules.yml"
DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
PROMETHEUS_OWN = {"up"}  # set by Prometheus for every scrape target


def _names(exposition: str) -> set[str]:
    """Every metric family and sample name in an exposition."""
    names = set(re.findall(r"^# HELP (\w+)", exposition, re.MULTILINE))
    return names | set(re.findall(r"^(\w+)[{ ]", exposition, re.MULTILINE))


def test_alert_rules_are_well_formed_and_name_only_our_metrics(tmp_path: Path) -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert all(set(g) == {"name", "rules"} for g in doc["groups"])
    alerts = {r["alert"] for r in rules}
    assert len(alerts) == len(rules)  # unique names
    assert {"PhrConnectorNoSuccess26h", "PhrAuditBacklogHigh", "PhrHigh5xxRate"} <= alerts
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"]
        assert "for" not in r or DURATION.fullmatch(r["for"]), r
        assert r["expr"].count("(") == r["expr"].count(")"), r

    served = _app(tmp_path).test_client().get("/metrics").get_data(as_text=True)
    textfile = tmp_path / "connector.prom"
    LastRun("072028", Summary(read=3, sent=2, rejected=1)).write(textfile)
    known = _names(served) | _names(textfile.read_text(encoding="utf-8")) | PROMETHEUS_OWN
    named = {name for r in rules for name in re.findall(r"\b(phr_\w+|up)\b", r["expr"])}
    assert named <= known, sorted(named - known)
    assert "phr_connector_last_success_timestamp_seconds" in named
    assert "phr_audit_backlog_events" in named
