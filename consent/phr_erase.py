"""The consent service asking the PHR servers to erase records (phr_server/erase.py).

Called by the portal's account deletion and city withdrawal with the (municipality, code)
pairs whose records should go. Each city's records are erased at the PHR server holding them
(federation.directory: a family that moved has records on two servers); the servers are asked
one after the other and the first refusal stops the rest, so a retry (erasing is idempotent)
finishes the work. The token is the consent service's own client-credentials token at the IdP
(PHR_CONSENT_SERVICE_CLIENT_ID, scope `phr/erase`, with RFC 8707 `resource` for a server
other than the configured one), one per server, kept until shortly before it expires. Tokens
are never logged."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence

from federation.directory import Directory
from phr_core import request_ids
from phr_core.config import Settings
from phr_core.identifiers import pseudonym_system

log = logging.getLogger(__name__)

ERASE_SCOPE = "phr/erase"
TIMEOUT_S = 30


class EraseUnavailable(Exception):
    """The PHR server (or the IdP) could not be asked or refused: nothing was deleted here."""


class ServiceToken:
    """Client credentials at the IdP for `phr/erase`, one token per PHR server."""

    def __init__(self, token_url: str, client_id: str, secret: str) -> None:
        self.token_url, self.client_id, self.secret = token_url, client_id, secret
        self._tokens: dict[str | None, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, resource: str | None = None) -> str:
        with self._lock:
            kept = self._tokens.get(resource)
            if kept and kept[0] > time.time():
                return kept[1]
            user = urllib.parse.quote(self.client_id, safe="")
            password = urllib.parse.quote(self.secret, safe="")
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            form = {"grant_type": "client_credentials", "scope": ERASE_SCOPE}
            if resource is not None:
                form["resource"] = resource
            req = urllib.request.Request(  # noqa: S310 - the configured issuer
                self.token_url,
                data=urllib.parse.urlencode(form).encode(),
                headers={"Authorization": f"Basic {basic}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - as above
                    data = json.load(resp)
            except (OSError, ValueError) as exc:
                log.warning("no erase token from the IdP (%s)", type(exc).__name__)
                raise EraseUnavailable("no token from the IdP") from None
            ttl = max(int(data.get("expires_in", 60)) - 30, 5)
            self._tokens[resource] = (time.time() + ttl, data["access_token"])
            return data["access_token"]


class PhrEraser:
    """`POST {server}/$erase` with a Parameters body naming each Patient by its code, at the
    configured PHR server (`fhir_url`, token `token()`) or, for a city `server_of` names, at
    that server (token `token(resource)`)."""

    def __init__(
        self,
        fhir_url: str,
        token: Callable[..., str],
        server_of: Callable[[str], str | None] = lambda municipality: None,
    ) -> None:
        self.fhir_url = fhir_url.rstrip("/")
        self.token = token
        self.server_of = server_of

    def erase(self, pairs: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Erase these Patients' records on every server holding them; returns the summed
        counts. EraseUnavailable at the first server that cannot."""
        pairs = list(dict.fromkeys(pairs))
        totals = {"patients": 0, "resources": 0}
        by_server: dict[str | None, list[tuple[str, str]]] = {}
        for city, code in pairs:
            by_server.setdefault(self.server_of(city), []).append((city, code))
        for server, some in by_server.items():
            token = self.token() if server is None else self.token(server)
            for name, n in self._erase_at(server or self.fhir_url, token, some).items():
                totals[name] = totals.get(name, 0) + n
        return totals

    def _erase_at(self, base: str, token: str, pairs: list[tuple[str, str]]) -> dict[str, int]:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "patient",
                    "valueIdentifier": {"system": pseudonym_system(city), "value": code},
                }
                for city, code in pairs
            ],
        }
        req = urllib.request.Request(  # noqa: S310 - a PHR server of the federation
            base.rstrip("/") + "/$erase",
            data=json.dumps(body).encode(),
            method="POST",
            headers=request_ids.outgoing(
                {
                    "Authorization": "Bearer " + token,
                    "Content-Type": "application/fhir+json",
                    "Accept": "application/fhir+json",
                }
            ),
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - as above
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:
            log.warning("PHR server refused the erase (%s)", exc.code)
            raise EraseUnavailable(f"the PHR server answered {exc.code}") from None
        except (OSError, ValueError) as exc:
            log.warning("PHR server unreachable for the erase (%s)", type(exc).__name__)
            raise EraseUnavailable("the PHR server cannot be reached") from None
        return {
            p["name"]: int(p.get("valueInteger", 0))
            for p in doc.get("parameter", [])
            if isinstance(p, dict) and "name" in p
        }


def eraser(settings: Settings, found: Directory | None = None) -> PhrEraser:
    """The eraser of a running consent service: each city's records at the server the
    federation `found` names for it (the configured PHR server without a federation)."""
    token = ServiceToken(
        settings.issuer + "/token",
        settings.option("PHR_CONSENT_SERVICE_CLIENT_ID"),
        settings.secret("PHR_CONSENT_SERVICE_SECRET"),
    )
    home = settings.urls["fhir"].rstrip("/")

    def server_of(municipality: str) -> str | None:
        server = found.server_for(municipality) if found is not None else None
        return None if server is None or server.resource == home else server.resource

    return PhrEraser(home, token, server_of)
