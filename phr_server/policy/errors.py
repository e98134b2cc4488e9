"""What the policy answers when it says no: each becomes one HTTP status at the routes."""

from __future__ import annotations


class Denied(Exception):
    """403: the token does not allow this; the message reveals nothing about patients."""


class ConsentUnavailable(Exception):
    """503: the consent service cannot be asked; we fail closed."""


class NotServed(Exception):
    """404: a resource type this server does not serve; nobody may touch it."""
