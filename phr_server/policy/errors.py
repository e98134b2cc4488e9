"""What the policy answers when it says no: each becomes one HTTP status at the routes. A
refusal carries the caller's Access when the policy got as far as knowing who asked, so that
the refusal is audited like any other failure (api.handle)."""

from __future__ import annotations

from phr_server.policy.access import Access


class Refused(Exception):
    def __init__(self, message: str, access: Access | None = None) -> None:
        super().__init__(message)
        self.access = access


class Denied(Refused):
    """403: the token does not allow this; the message reveals nothing about patients."""


class NotServed(Refused):
    """404: a resource type this server does not serve; nobody may touch it."""


class ConsentUnavailable(Exception):
    """503: the consent service cannot be asked; we fail closed."""
