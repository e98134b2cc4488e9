"""Waiting out the PHR server's grant cache after a revocation (it keeps a grant's status for
at most 5 s): the tests that revoke and then expect a refusal ask again until one comes."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests


def first_refusal(get: Callable[[], requests.Response], bound_s: float = 10) -> requests.Response:
    """The first answer to `get` that is not 200, or the last one once `bound_s` has passed."""
    deadline = time.monotonic() + bound_s
    while True:
        answer = get()
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)
