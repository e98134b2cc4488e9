"""The policy point: the one function every request's Access comes from (`authorize`), and
the one check of an action on a resource type (`check`), which `authorize` applies to the
request and the transaction applies to each entry of a Bundle. The rows a request may see
are then the repository's business: it takes their SQL condition from `Access.visible()`
(Medplum applies its access policy in its repository for the same reason: no route can forget
it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from phr_core.config import Settings
from phr_core.tokens import AccessToken
from phr_server import tenants
from phr_server.indexing import TYPES
from phr_server.policy.access import Access
from phr_server.policy.consent_client import ConsentDirectory
from phr_server.policy.decision import PatientResolver, decide
from phr_server.policy.errors import Denied, NotServed

# What a request does: read (read, vread, history, $everything), search, write (a connector's
# transaction or update), erase (the consent service's `$erase`).
Action = Literal["read", "search", "write", "erase"]
# What is asked of one resource type, and the SMART permission letter of each.
Verb = Literal["read", "search", "create", "update"]
PERMS: dict[Verb, str] = {"read": "r", "search": "s", "create": "c", "update": "u"}
ERASE_SCOPE = "phr/erase"


@dataclass(frozen=True)
class Sources:
    """Where the decision looks things up: the consent service, the Patient ids behind its
    answers, and the server's configuration (its municipalities, the consent service's id)."""

    consent: ConsentDirectory
    patients: PatientResolver
    settings: Settings


def authorize(
    token: AccessToken,
    raw_token: str,
    action: Action,
    rtype: str | None,
    sources: Sources,
    session: Any,
) -> Access:
    """The request's Access if `token` may do `action` (on `rtype`, when the request names
    one), else Denied (403), NotServed (404) or ConsentUnavailable (503). The token is already
    verified, with its DPoP proof (phr_server.authn). A refusal of what the caller asked, once
    the decision knows who they are, carries their Access (for the audit)."""
    if action == "erase":  # the consent service itself asks: no grant to look up
        return _eraser(token, raw_token, sources.settings)
    access = decide(token, raw_token, sources.consent, sources.patients, session)
    if action == "write":
        _may_write(access, sources.settings)
    if rtype is not None:
        if rtype not in TYPES:
            raise NotServed(f"resource type {rtype!r} is not served here", access)
        if action != "write":  # a write is checked per entry, by what it does (transaction.py)
            check(access, action, rtype)
    return access


def check(access: Access, action: Verb, rtype: str) -> None:
    """Denied unless the request's scopes allow `action` on `rtype`."""
    if not access.allows(rtype, PERMS[action]):
        raise Denied(f"the token's scopes do not allow {action} of {rtype}", access)


def _may_write(access: Access, settings: Settings) -> None:
    """Only connectors write, and only for a municipality this server serves (tenants.py)."""
    if not access.system:
        raise Denied("only system clients (connectors) write", access)
    why = tenants.refusal(settings, [access.municipality or ""])
    if why:
        raise Denied(why, access)


def _eraser(token: AccessToken, raw_token: str, settings: Settings) -> Access:
    """`$erase` is the consent service's alone: its own client-credentials token (no grant,
    not a person's) with the scope `phr/erase`, from PHR_CONSENT_SERVICE_CLIENT_ID."""
    if (
        token.grant_id is not None
        or token.subject != token.client_id  # client credentials, never a person's token
        or ERASE_SCOPE not in token.scopes
        or token.client_id != settings.option("PHR_CONSENT_SERVICE_CLIENT_ID")
    ):
        raise Denied("only the consent service may erase records")
    return Access(token, raw_token, [])
