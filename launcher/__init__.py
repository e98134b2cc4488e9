"""The launcher: the `phr` command, the process runner, the development sandbox, the second
demo city and the demo loaders. The only package allowed to import every service; the kernel
(`phr_core`) and the services never import it (docs/architecture.md).

Importing it takes Ctrl-C back (`take_back_ctrl_c`), before anything else of ours is imported."""

import signal
import threading


def take_back_ctrl_c() -> None:
    """A `phr` started as a background job of a script (`make test &`, CI) inherits SIGINT
    ignored, and Python then raises no KeyboardInterrupt: `phr dev run` could not be stopped
    with SIGINT. Every long-running phr command is documented to stop on Ctrl-C, so take SIGINT
    back. Done when this package is imported, before the CLI's own imports, which take seconds
    on a busy machine: a SIGINT sent while they ran used to be lost, and `phr dev run` then
    started and served as if nothing had been asked (CI, 2026-12-07)."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; the `phr` command runs there
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


take_back_ctrl_c()
