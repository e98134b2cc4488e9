"""Runs services under gunicorn (several workers each), waits until they are ready, prints where
they are, and on Ctrl-C or SIGTERM stops them all before returning (launcher.supervisor: each
service's whole process group, within STOP_TIMEOUT_S, at once on a second Ctrl-C)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace

import gunicorn

from launcher import haproxy, supervisor
from phr_core import metrics
from phr_core.config import ConfigError, Settings
from phr_core.services import ServiceSpec

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0  # gunicorn's --graceful-timeout (10 s) for requests, and some slack
# Stopped before every service answered: no request to finish, only workers still importing
# the app (which gunicorn lets finish first); they are killed sooner.
STARTING_STOP_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Target:
    """One WSGI app to serve: a service, or a development helper such as the card authority."""

    name: str
    title: str
    app_factory: str
    port: int
    port_variable: str  # what to change when the port is taken
    # Variables set for this process alone (the development second city's PHR server and
    # connector: the same service code with their own ports, databases and keys).
    environ: tuple[tuple[str, str], ...] = ()
    threads: int = 1  # more than 1: gunicorn's gthread worker with this many threads
    host: str | None = None  # where to bind, when not PHR_HOST (replicas: loopback only)
    replica: int = 0  # which copy of a pool behind HAProxy (1, 2, …); 0: not replicated

    @classmethod
    def of(cls, service: ServiceSpec, settings: Settings) -> Target:
        return cls(
            service.name,
            service.title,
            service.app_factory,
            settings.ports[service.name],
            f"PHR_{service.env_prefix}_PORT",
            threads=threads_of(service, settings),
        )

    @classmethod
    def all_of(cls, service: ServiceSpec, settings: Settings) -> list[Target]:
        """Every worker pool of a service: one, except the consent service, whose decision API
        (asked by PHR servers and the IdP while a portal page may be waiting on them) has a
        pool of its own that portal pages cannot occupy."""
        pools = [cls.of(service, settings)]
        if service.name == "consent":
            pools.append(
                cls(
                    "consent-api",
                    "Consent decision API (for PHR servers and the IdP)",
                    f"{service.package}.app:create_api_app()",
                    settings.consent_api_port,
                    "PHR_CONSENT_API_PORT",
                    threads=threads_of(service, settings, "PHR_CONSENT_API_THREADS"),
                )
            )
        return pools


@dataclass
class Running:
    target: Target
    process: subprocess.Popen[bytes]
    host: str

    @property
    def local_url(self) -> str:
        return f"http://{_display_host(self.host)}:{self.target.port}/"


def _display_host(host: str) -> str:
    # S104: maps a bind-all address to a loopback URL for display; binds nothing
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - see above


def threads_of(service: ServiceSpec, settings: Settings, variable: str | None = None) -> int:
    """Threads per worker of a service that declares `PHR_<SVC>_THREADS` (or `variable`): the
    services that wait on others (the PHR server, the IdP, the consent portal and API), whose
    per-process state is thread-safe; 1 (gunicorn's sync worker) for the others."""
    name = variable or f"PHR_{service.env_prefix}_THREADS"
    try:
        value = settings.option(name)
    except KeyError:
        return 1
    try:
        threads = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not 1 <= threads <= 64:
        raise ConfigError(f"{name} must be between 1 and 64")
    return threads


def gunicorn_command(target: Target, settings: Settings) -> list[str]:
    """The command line that serves one app."""
    # Workers that answer gunicorn's own refusals (request line, headers) in the service's
    # error format; the request line at gunicorn's largest limit, so that the app's own URL
    # limit (PHR_MAX_URL_BYTES, phr_core.request_limits) is the one that usually answers.
    workers = "phr_core.gunicorn_workers." + (
        "ThreadWorker" if target.threads > 1 else "SyncWorker"
    )
    threaded = ["--threads", str(target.threads)]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(settings.workers),
        "--worker-class",
        workers,
        *(threaded if target.threads > 1 else []),
        "--limit-request-line",
        "8190",
        "--bind",
        f"{target.host or settings.host}:{target.port}",
        "--config",  # log format, the app's access line, worker metrics (phr_core.logs)
        "python:phr_core.gunicorn_conf",
        "--graceful-timeout",
        "10",
        "--log-level",
        settings.log_level.lower(),
        *_control_socket_off(),
        target.app_factory,
    ]


def _control_socket_off() -> list[str]:
    # gunicorn 27 opens a control socket at one fixed path per user; four masters would fight
    # over it, and the platform does not use it.
    return ["--no-control-socket"] if gunicorn.version_info >= (27,) else []


def check_ports_free(settings: Settings, targets: list[Target]) -> None:
    """Fail early, naming the variable to change, when a port is taken."""
    for t in targets:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((t.host or settings.host, t.port))
            except OSError:
                raise ConfigError(
                    f"port {t.port} for {t.title} is already in use; "
                    f"stop what uses it or set {t.port_variable}"
                ) from None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "readyz", timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(
    settings: Settings,
    services: tuple[ServiceSpec, ...],
    *,
    extras: tuple[Target, ...] = (),
    announce: Callable[[str], None] = print,
    titles: dict[str, str] | None = None,
    replicas: int = 1,
) -> int:
    """Serve `services` (and `extras`) until interrupted. Returns 0 after a clean stop, 1 when
    one of them died. `titles` renames services in the banner (by service name). `replicas`
    above 1 runs each service's pools that many times behind HAProxy (launcher.haproxy), which
    takes the services' own ports; the extras stay single."""
    settings.require_production_ready(services)
    pools = [t for s in services for t in Target.all_of(s, settings)]
    pools = [replace(t, title=(titles or {}).get(t.name, t.title)) for t in pools]
    frontends: list[tuple[haproxy.Frontend, Target]] = []
    if replicas > 1:
        require_shared_database(settings, services)
        pools, frontends = replicated(pools, replicas)
    targets = pools + list(extras)
    check_ports_free(settings, targets + [lb for _, lb in frontends])
    if frontends:
        cfg = haproxy.write(
            settings.var_dir / "haproxy.cfg", settings.host, [f for f, _ in frontends]
        )
    _prepare(settings, services)
    stop = supervisor.StopSignals().install()
    env = {**os.environ, "PHR_VAR_DIR": str(settings.var_dir)}
    running: list[Running] = []
    grace_s = STARTING_STOP_TIMEOUT_S
    try:
        for t in targets:
            if stop.requested:
                return 0
            # A session of its own: the terminal's Ctrl-C reaches only us, and we stop each
            # whole group (master and workers) instead of racing them.
            pool_env = {**env, **metrics_env(t, settings), **dict(t.environ)}
            proc = supervisor.start(gunicorn_command(t, settings), env=pool_env)
            running.append(Running(t, proc, t.host or settings.host))
        if frontends:
            proc = supervisor.start(haproxy.command(cfg), env=env)
            running += [Running(lb, proc, settings.host) for _, lb in frontends]
        failed = _wait_ready(running, stop)
        if failed:
            announce(f"{failed} did not start; see the log above.")
            return 1
        if stop.requested:
            return 0
        grace_s = STOP_TIMEOUT_S
        announce(_banner(settings, running))
        while not stop.wait(0.5):
            dead = [r for r in running if supervisor.exited(r.process)]
            if dead:
                announce(f"{dead[0].target.title} stopped unexpectedly; stopping the others.")
                return 1
        return 0
    finally:
        try:
            procs = list({id(r.process): r.process for r in running}.values())
            supervisor.stop_groups(procs, stop, grace_s, announce=announce)
            announce("All services stopped.")
        finally:
            stop.uninstall()


def require_shared_database(settings: Settings, services: tuple[ServiceSpec, ...]) -> None:
    """Replicas share one database per service: SQLite on one machine's disk is not that."""
    local = [s.name for s in services if settings.database_urls[s.name].startswith("sqlite")]
    if local:
        raise ConfigError(
            f"replicas need PostgreSQL ({', '.join(local)} use SQLite): "
            "set PHR_DATABASE_URL=postgresql://…"
        )
    haproxy.binary()  # fail before starting anything when the load balancer is missing


def replicated(
    pools: list[Target], replicas: int
) -> tuple[list[Target], list[tuple[haproxy.Frontend, Target]]]:
    """Each pool `replicas` times on free loopback ports, and HAProxy's frontend for it on the
    pool's own port (with the pool as a target: its readiness and its line in the banner)."""
    out: list[Target] = []
    frontends = []
    for t in pools:
        copies = [
            replace(
                t,
                name=f"{t.name}-r{i}",
                title=f"{t.title} · replica {i}",
                port=_free_loopback_port(),
                port_variable="(a free port; start again)",
                host="127.0.0.1",
                replica=i,
            )
            for i in range(1, replicas + 1)
        ]
        out += copies
        front = haproxy.Frontend(t.name, t.port, tuple(c.port for c in copies))
        frontends.append((front, replace(t, title=f"{t.title} — {replicas} replicas, HAProxy")))
    return out, frontends


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics_env(target: Target, settings: Settings) -> dict[str, str]:
    """Where one worker pool's workers keep their metrics (phr_core.metrics), emptied: a pool's
    counters start from zero with it, as Prometheus expects of a restarted target."""
    path = settings.var_dir / "metrics" / target.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return {metrics.MULTIPROC_VARIABLE: str(path)}


def _prepare(settings: Settings, services: tuple[ServiceSpec, ...]) -> None:
    """Each service's one-time start-up work (`<package>.app:prepare`, e.g. the IdP's signing
    keys), done once here so the workers do not race to do it. Only the IdP has any."""
    if any(s.name == "idp" for s in services):
        # The IdP's whole web app (about a second to import): only when serving it, not on
        # every `phr` command.
        from idp.app import prepare

        prepare(settings)


def _wait_ready(running: list[Running], stop: supervisor.StopSignals) -> str | None:
    """Wait for every service's /readyz; return the title of one that died, else None (also
    when asked to stop meanwhile)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(running)
    while pending and not stop.requested:
        for r in list(pending):
            if stop.requested:
                return None
            if supervisor.exited(r.process):
                return r.target.title
            if _ready(r.local_url):
                pending.remove(r)
        if time.monotonic() > deadline:
            return pending[0].target.title
        stop.wait(0.2)
    return None


def _banner(settings: Settings, running: list[Running]) -> str:
    where = "SQLite under " + str(settings.var_dir)
    if not all(u.startswith("sqlite") for u in settings.database_urls.values()):
        where = "the configured databases"
    lines = [f"PHR platform is running ({settings.env} mode, {where}):"]
    width = max(_columns(r.target.title) for r in running)
    # The portal first, each service's replicas (when any) after every public address (stable).
    order = sorted(running, key=lambda r: (r.target.replica > 0, r.target.name != "consent"))
    lines += [
        f"  {r.target.title}{' ' * (width - _columns(r.target.title))}  {r.local_url}"
        for r in order
    ]
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def _columns(text: str) -> int:
    """Terminal columns: a Japanese city name's characters take two each."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
