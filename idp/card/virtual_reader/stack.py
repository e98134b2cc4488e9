"""A private PC/SC stack with a virtual reader, started and stopped by tests and benchmarks:

    pcscd (its own mount and network namespaces) ── vpcd driver ── 127.0.0.1:PORT ── vicc process

pcscd always serves /run/pcscd/pcscd.comm, so it runs in a mount namespace where a temporary
folder is bound over /run/pcscd; clients find it with PCSCLITE_CSOCK_NAME (pcsc-lite's client
library reads it). vpcd listens on every address of its network namespace, so that namespace is
a fresh one with only the loopback interface, and the card process joins it (nsenter). Nothing
touches the machine's own pcscd or readers, and several stacks run side by side.

Needs root (namespaces), Debian's pcscd, vsmartcard-vpcd and python3-virtualsmartcard, and
util-linux's unshare/nsenter; `missing()` says what is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from idp.authority_sim.ca import init_authority
from idp.card.profile import BasicAttributes
from idp.card.vcard import VirtualCard
from phr_core.config import load_settings

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
_START = (
    '"$3" link set lo up && mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd '
    '&& exec "$4" --foreground --config "$2"'
)
_PROBE = """
import sys, smartcard.scard as s
rv, ctx = s.SCardEstablishContext(s.SCARD_SCOPE_USER)
rv, names = s.SCardListReaders(ctx, [])
if rv or not names: print("none"); sys.exit()
rv, st = s.SCardGetStatusChange(ctx, 0, [(n, s.SCARD_STATE_UNAWARE) for n in names])
print("card" if any(e & s.SCARD_STATE_PRESENT for _, e, _ in st) else "empty")
"""


def missing() -> str | None:
    """Why a stack cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the virtual PC/SC reader needs root (namespaces for a private pcscd)"
    for tool in ("pcscd", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return (
                f"{tool} not installed (apt-get install pcscd vsmartcard-vpcd util-linux iproute2)"
            )
    if not VPCD_DRIVER.exists():
        return "vsmartcard's vpcd driver not installed (apt-get install vsmartcard-vpcd)"
    try:
        import smartcard.scard  # noqa: F401 - only whether it imports
    except ImportError:
        return "pyscard not installed (pip install -e '.[reader]'; needs libpcsclite-dev)"
    from idp.card.virtual_reader.vicc import load_virtualsmartcard

    try:
        load_virtualsmartcard()
    except ImportError as exc:
        return str(exc)
    return None


def _tool(name: str) -> str:
    """Absolute path of a system tool (sbin included: pcscd and ip live there)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} not installed")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PcscStack:
    """`start()` pcscd (with the virtual reader unless `with_reader=False`), `insert()` a card,
    `remove()` it, `stop()` everything. `env` is what a client process needs."""

    def __init__(self, folder: Path, with_reader: bool = True) -> None:
        self.folder = Path(folder)
        self.with_reader = with_reader
        self.port = _free_port()
        self.run_dir = self.folder / "run"
        self.socket = self.run_dir / "pcscd.comm"
        self.pcscd: subprocess.Popen[bytes] | None = None
        self.card: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket)}

    def start(self, timeout: float = 15.0) -> PcscStack:
        conf = self.folder / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.with_reader:
            (conf / "vpcd").write_text(
                'FRIENDLYNAME "Virtual PCD"\n'
                f"DEVICENAME   /dev/null:{self.port}\n"
                f"LIBPATH      {VPCD_DRIVER}\n"
                f"CHANNELID    {self.port}\n"
            )
        log = open(self.folder / "pcscd.log", "ab")  # noqa: SIM115 - handed to the process
        # S603: fixed tools and our own temporary paths, no shell input from outside
        self.pcscd = subprocess.Popen(  # noqa: S603 - see above
            [
                _tool("unshare"),
                "--mount",
                "--net",
                "--propagation",
                "private",
                _tool("sh"),
                "-c",
                _START,
                "sh",
                str(self.run_dir),
                str(conf),
                _tool("ip"),
                _tool("pcscd"),
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.pcscd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pcscd did not start; see {self.folder / 'pcscd.log'}")
            time.sleep(0.05)
        return self

    def state(self) -> str:
        """'none' (no reader), 'empty' or 'card', as a PC/SC client in its own process sees it
        (pcsc-lite's client library reads PCSCLITE_CSOCK_NAME once per process)."""
        out = subprocess.run(  # noqa: S603 - this interpreter and a fixed script
            [sys.executable, "-c", _PROBE],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return out.stdout.strip() or "none"

    def wait_for(self, wanted: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.state()) != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reader state {seen!r}, expected {wanted!r}")
            time.sleep(0.2)

    def insert(self, card_file: Path | None, wait: bool = True) -> None:
        """Put a card on the reader: a virtual card file, or (None) a card without JPKI."""
        assert self.pcscd is not None, "start() first"  # noqa: S101 - programming error
        self.remove()
        which = ["--card", str(card_file)] if card_file is not None else ["--not-jpki"]
        self.card = subprocess.Popen(  # noqa: S603 - fixed tools, our module, a file path
            [
                _tool("nsenter"),
                f"--net=/proc/{self.pcscd.pid}/ns/net",
                sys.executable,
                "-m",
                "idp.card.virtual_reader.vicc",
                "--port",
                str(self.port),
                *which,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "vicc.log", "ab"),  # noqa: SIM115 - the child's
            cwd=Path(__file__).resolve().parents[3],
        )
        if wait:
            self.wait_for("card")

    def remove(self, wait: bool = False) -> None:
        """Take the card off the reader (its process ends, as a chip loses power)."""
        if self.card is not None and self.card.poll() is None:
            self.card.kill()
            self.card.wait(10)
        self.card = None
        if wait:
            self.wait_for("empty")

    def unplug(self) -> None:
        """Stop pcscd, as when the reader's cable is pulled and the service goes with it."""
        if self.pcscd is not None and self.pcscd.poll() is None:
            self.pcscd.send_signal(signal.SIGTERM)
            try:
                self.pcscd.wait(10)
            except subprocess.TimeoutExpired:
                self.pcscd.kill()
                self.pcscd.wait(10)

    def stop(self) -> None:
        self.remove()
        self.unplug()
        self.pcscd = None

    def __enter__(self) -> PcscStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def issue_virtual_card(folder: Path, auth_pin: str = "1234") -> Path:
    """A development authority in `folder` and a virtual card it issued (folder/card.json)."""
    settings = load_settings({"PHR_VAR_DIR": str(folder / "var")})
    issued = init_authority(settings).issue_card(
        BasicAttributes("会津 花子", "1990-04-01", "female", "福島県会津若松市東栄町3-46")
    )
    card = folder / "card.json"
    VirtualCard.create(
        card,
        (issued.auth_cert, issued.auth_key),
        (issued.sign_cert, issued.sign_key),
        auth_pin,
        "ABC123",
    )
    return card


def check() -> None:
    """Start a stack, put a freshly issued virtual card on it, have reader mode's own
    `phr card readers` find a My Number card with 3 PIN tries, stop: .ci/run's preflight."""
    reason = missing()
    if reason:
        raise SystemExit(f"virtual PC/SC reader unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="phr-pcsc-") as tmp:
        folder = Path(tmp)
        card = issue_virtual_card(folder)
        with PcscStack(folder / "pcsc") as stack:
            stack.insert(card)
            out = subprocess.run(
                [sys.executable, "-m", "launcher.cli", "card", "readers"],
                env={**stack.env, "LANG": "C.UTF-8"},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=Path(__file__).resolve().parents[3],
            )
        if "My Number card (user-authentication PIN: 3 tries left)" not in out.stdout:
            raise SystemExit(f"virtual PC/SC reader check failed:\n{out.stdout}{out.stderr}")
        print(f"pcsc: pcscd + vpcd + virtual JPKI card OK ({out.stdout.strip().splitlines()[0]})")


if __name__ == "__main__":
    if sys.argv[1:] != ["--check"]:
        raise SystemExit("usage: python -m idp.card.virtual_reader.stack --check")
    check()
