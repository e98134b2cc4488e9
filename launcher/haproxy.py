"""HAProxy in front of service replicas (`phr dev run --replicas N`): the configuration the
launcher writes and the command it supervises.

Each service keeps its configured port and public URL; HAProxy listens there and sends every
request, round robin, to one of the service's replicas on loopback ports of their own. There
are no sticky sessions on purpose: whatever must be global (codes, refresh tokens, replayed
`jti`s, attempt counters, sessions, CSRF) lives in the shared PostgreSQL database or in signed
cookies, and the replica tests (tests/launcher/test_replicas.py) prove it by alternating.

`X-PHR-Replica` names the replica that answered (development only: it shows the rotation).
HAProxy logs nothing per request here: the access logs are the replicas' own, without query
strings (authorization codes travel in them).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from phr_core.config import ConfigError

REPLICA_HEADER = "X-PHR-Replica"
HEALTH_PATH = "/readyz"


@dataclass(frozen=True)
class Frontend:
    """One service as the world sees it (`port`) and its replicas' ports behind it."""

    name: str
    port: int
    replicas: tuple[int, ...]


def binary() -> str:
    """The haproxy program (Debian's package `haproxy`), or ConfigError saying how to get it."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise ConfigError("replicas need HAProxy as their load balancer: apt-get install haproxy")
    return found


def config(host: str, frontends: list[Frontend]) -> str:
    """The whole configuration: one frontend and backend per service, round robin, health
    checked on /readyz, a request retried once on another replica when one cannot be reached."""
    lines = [
        "# Written by `phr dev run --replicas` (launcher/haproxy.py); rewritten on every start.",
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    balance roundrobin",
        "    option forwardfor",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        f"    option httpchk GET {HEALTH_PATH}",
        "    default-server check inter 2s fall 2 rise 1",
    ]
    for f in frontends:
        lines += [
            "",
            f"frontend {f.name}",
            f"    bind {host}:{f.port}",
            f"    use_backend {f.name}",
        ]
        lines += ["", f"backend {f.name}", f"    http-response set-header {REPLICA_HEADER} %s"]
        lines += [f"    server r{i} 127.0.0.1:{port}" for i, port in enumerate(f.replicas, 1)]
    return "\n".join(lines) + "\n"


def write(path: Path, host: str, frontends: list[Frontend]) -> Path:
    """Write the configuration and have haproxy check it (a bad one fails here, clearly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config(host, frontends), encoding="utf-8")
    # S603: the haproxy binary found above, on a file we just wrote; no shell
    checked = subprocess.run(  # noqa: S603 - see above
        [binary(), "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        alerts = [x for x in (checked.stderr + checked.stdout).splitlines() if "ALERT" in x]
        raise ConfigError(f"haproxy refused {path}: " + " ".join(alerts[:3]))
    return path


def command(path: Path) -> list[str]:
    """HAProxy in the foreground (`-db`), a child of the launcher's supervisor."""
    return [binary(), "-f", str(path), "-db"]
