"""What an app (a third-party client under a consent grant) sees of identifiers: its own
sector's ids for every resource and reference, its sector's values for the platform's
identifiers (the city's pseudonymous code, source record keys, client ids, subjects), and an
audit trail that names people and other clients by role. The portal (first party) and the
connectors see the stored, real values. Issue 14; the mapping itself is phr_core.pairwise_ids.

Incoming ids (paths, `_id`, `patient`/`subject`, identifier searches, paging cursors) are
mapped back here before anything looks them up; one that does not decrypt under the sector's
key is an id nobody has, so the answer is the 404 (or empty search) of an unknown id. An app's
identifier search names its system (a bare value would match the stored city codes).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from phr_core.pairwise_ids import (
    CLAIM,
    SectorIds,
    decode_key,
    fallback_key,
    for_key,
    is_mapped_system,
)
from phr_core.tokens import AccessToken
from phr_server.audit import CLIENT_SYSTEM, ROLE_SYSTEM, SUBJECT_SYSTEM
from phr_server.search import BadRequest

NO_MATCH = "!"  # not a valid id or code: a search on it finds nothing
BARE_IDENTIFIER = (
    "identifier: an app searches identifier=<system>|<value> with the values it was given"
    " (or |<value> for an identifier without a system)"
)
# A FHIR id's form. A value of another form is no one's id in any sector: it goes to the search
# parser unchanged, which answers what it answers for everyone (a NUL is a 400, issue 21).
_ID_FORM = re.compile(r"[A-Za-z0-9\-.]{1,64}")
REFERENCE_PARAMS = ("patient", "subject")


def ids_for(token: AccessToken, fallback_secret: bytes) -> SectorIds | None:
    """The sector mapping a request answers in, or None for the portal and connectors."""
    if token.grant_id is None:
        return None  # first party (portal) or a system client (connector): real ids
    key = decode_key(token.claims.get(CLAIM))
    if key is None:
        issuer = str(token.claims.get("iss", ""))
        key = fallback_key(fallback_secret, issuer, token.client_id)
    return for_key(key)


# --- incoming ---------------------------------------------------------------------------------


def search_args(ids: SectorIds, rtype: str, args: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The search's (name, value) pairs with the sector's ids and values mapped back."""
    out = []
    for name, raw in args:
        base = name.partition(":")[0]
        if base == "_id":
            raw = ",".join(_id_in(ids, rtype, v) for v in raw.split(","))
        elif base in REFERENCE_PARAMS:
            raw = ",".join(_patient_in(ids, v) for v in raw.split(","))
        elif name == "identifier":  # with a modifier, search.parse refuses the modifier
            raw = ",".join(_identifier_in(ids, v) for v in raw.split(","))
        elif base == "_cursor":
            raw = ids.open_text("cursor/" + rtype, raw) or NO_MATCH
        out.append((name, raw))
    return out


def _id_in(ids: SectorIds, rtype: str, value: str) -> str:
    if not _ID_FORM.fullmatch(value):
        return value  # not an id's form: stored ids have it, so this matches nothing there
    return ids.into(rtype, value) or NO_MATCH


def _patient_in(ids: SectorIds, value: str) -> str:
    rid = value.removeprefix("Patient/")
    if not value or "/" in rid:
        return value  # not a Patient reference: search.parse says so
    return ids.into("Patient", rid) or NO_MATCH


def _identifier_in(ids: SectorIds, value: str) -> str:
    system, sep, code = value.partition("|")
    if not sep:
        # A bare value matches every system's, the city's pseudonymous code among them: an app
        # could confirm a code it learnt elsewhere. Its values are its own per system.
        raise BadRequest("identifier", BARE_IDENTIFIER)
    if not code or not is_mapped_system(system):
        return value
    return f"{system}|{ids.value_in(system, code) or NO_MATCH}"


# --- outgoing ---------------------------------------------------------------------------------


def resource_out(ids: SectorIds, token: AccessToken, rtype: str, body: bytes) -> bytes:
    """A stored resource as the sector sees it."""
    res = orjson.loads(body)
    if rtype == "AuditEvent":
        _audit_by_role(res, token)
    _walk(res, ids)
    if isinstance(res.get("id"), str):
        res["id"] = ids.out(rtype, res["id"])
    return orjson.dumps(res)


def _walk(root: Any, ids: SectorIds) -> None:
    """Every `reference` and every identifier value of a platform system, in place (a loop,
    not recursion, touching each value once: this runs for every resource an app is served)."""
    stack = [root]
    pop, push, ref_out = stack.pop, stack.append, ids.ref_out
    while stack:
        node = pop()
        if type(node) is list:
            for v in node:
                if type(v) is dict or type(v) is list:
                    push(v)
            continue
        for k, v in node.items():  # values change in place: the dict keeps its size
            if type(v) is str:
                if k == "reference":
                    node[k] = ref_out(v)
                elif k == "value" and is_mapped_system(node.get("system")):
                    node[k] = ids.value_out(node["system"], v)
            elif type(v) is dict or type(v) is list:
                push(v)


def _audit_by_role(event: dict[str, Any], token: AccessToken) -> None:
    """An AuditEvent names the app's own client and the reader themself as such; any other
    client or person only by role ("another app", "a guardian", …), and another client's
    query (its ids) is left out."""
    own_client = False
    for agent in event.get("agent") or []:
        ident = (agent.get("who") or {}).get("identifier") or {}
        system, value = ident.get("system"), ident.get("value")
        role = _role(agent)
        if system == CLIENT_SYSTEM:
            if value == token.client_id:
                own_client = True
                agent["who"] = {"display": "this app"}
            else:
                agent["who"] = {"display": _client_word(role, agent)}
        elif system == SUBJECT_SYSTEM:
            agent["who"] = {"display": "you" if value == token.subject else _person_word(role)}
        agent.pop("role", None)
    if not own_client:
        event["entity"] = [e for e in event.get("entity") or [] if "query" not in e]
        if not event["entity"]:
            event.pop("entity")


def _role(agent: dict[str, Any]) -> str | None:
    for concept in agent.get("role") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == ROLE_SYSTEM:
                return coding.get("code")
    return None


def _client_word(role: str | None, agent: dict[str, Any]) -> str:
    if role == "portal":
        return "the platform's portal"
    if role == "service":
        return "the platform"
    if role == "connector" or agent.get("requestor") is True:
        return "the city's connector"
    return "another app"


def _person_word(role: str | None) -> str:
    return {"guardian": "a guardian", "self": "the person themself"}.get(role or "", "someone")
