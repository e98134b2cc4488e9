"""The load balancer's configurations, without starting the platform: the one `phr dev run
--replicas` writes, and docker-compose.yml with deploy/haproxy.cfg (docker is not run here:
the compose file's structure is checked as YAML, the HAProxy file by `haproxy -c`)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from werkzeug.wrappers import Request

from idp import limits
from launcher import haproxy
from launcher.cli import main
from phr_core.config import ConfigError
from phr_core.services import SERVICES
from tests.conftest import IN_CI, make_environ

ROOT = Path(__file__).resolve().parents[2]
TRUSTED = "PHR_IDP_TRUSTED_PROXIES"


def _haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if not found:
        reason = "HAProxy is not installed (apt-get install haproxy; .ci/run installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_generated_config_balances_every_request_without_stickiness(tmp_path: Path) -> None:
    _haproxy()
    fronts = [
        haproxy.Frontend("idp", 18001, (28001, 28002)),
        haproxy.Frontend("fhir", 18002, (28003, 28004)),
    ]
    path = haproxy.write(tmp_path / "haproxy.cfg", "127.0.0.1", fronts)  # haproxy -c passed
    cfg = path.read_text()
    assert "balance roundrobin" in cfg and "option httpchk GET /readyz" in cfg
    assert not re.search(r"^\s*(cookie|stick|balance source|hash-type)", cfg, re.M)
    assert re.findall(r"server r\d 127\.0\.0\.1:(\d+)", cfg) == ["28001", "28002", "28003", "28004"]
    assert "bind 127.0.0.1:18001" in cfg and haproxy.command(path)[-1] == "-db"


def test_a_broken_config_is_refused_with_haproxys_reason(tmp_path: Path) -> None:
    _haproxy()
    with pytest.raises(ConfigError, match="haproxy refused"):
        haproxy.write(tmp_path / "bad.cfg", "not-an-address!", [haproxy.Frontend("x", 1, (2,))])


def test_replicas_refuse_sqlite_before_doing_anything(tmp_path: Path) -> None:
    env = make_environ(tmp_path, f"sqlite:///{tmp_path / 'one.db'}")
    result = CliRunner().invoke(main, ["dev", "run", "--replicas", "2"], env=env)
    assert result.exit_code != 0
    assert "replicas need PostgreSQL" in result.output
    assert not (tmp_path / "one.db").exists() and not (tmp_path / "var" / "secrets").exists()


def test_compose_scales_every_service_behind_haproxy() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    lb = services["haproxy"]
    assert lb["image"].startswith("haproxy:")
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    published = {p.split(":")[0] for p in lb["ports"]}
    assert services["migrate"]["command"] == ["phr", "db", "upgrade"]
    cfg = (ROOT / "deploy" / "haproxy.cfg").read_text()
    for spec in SERVICES:
        svc = services[spec.name]
        assert "ports" not in svc, f"{spec.name} publishes a port: a second replica would clash"
        assert "--migrate" not in svc["command"], "replicas would migrate at once"
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert str(spec.default_port) in published
        assert re.search(rf"server-template \S+ \d+ {spec.name}:{spec.default_port}\b", cfg)
    assert re.search(r"server-template \S+ \d+ consent:8007\b", cfg)  # the decision API pool
    assert "8007" in published
    assert not re.search(r"^\s*(cookie|stick)", cfg, re.M)
    if shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists():
        checked = subprocess.run(
            [_haproxy(), "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr


def test_compose_idp_counts_attempts_per_client_not_per_balancer() -> None:
    """Behind the compose file's HAProxy every IdP peer is the balancer: the IdP trusts its
    (fixed) address, so per-source limits count the address HAProxy appends, not the
    balancer's (ten bad card answers would otherwise block every card sign-in), and what a
    client writes into X-Forwarded-For itself is not believed."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    lb_address = services["haproxy"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(lb_address) in ipaddress.ip_network(subnet)
    trusted = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", services["idp"]["environment"][TRUSTED])
    proxies = limits.parse_proxies(trusted)
    via_lb = {"REMOTE_ADDR": lb_address, "HTTP_X_FORWARDED_FOR": "10.9.9.9, 203.0.113.5"}
    assert limits.source_address(Request(via_lb), proxies) == "203.0.113.5"
    direct = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "10.9.9.9"}
    assert limits.source_address(Request(direct), proxies) == "198.51.100.7"
