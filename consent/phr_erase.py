"""The consent service asking the PHR server to erase records (phr_server/erase.py).

Called by the portal's account deletion and city withdrawal with the (municipality, code)
pairs whose records should go. The token is the consent service's own client-credentials
token at the IdP (PHR_CONSENT_SERVICE_CLIENT_ID, scope `phr/erase`), kept until shortly
before it expires. Tokens are never logged."""

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

from phr_core.config import Settings
from phr_core.identifiers import pseudonym_system

log = logging.getLogger(__name__)

ERASE_SCOPE = "phr/erase"
TIMEOUT_S = 30


class EraseUnavailable(Exception):
    """The PHR server (or the IdP) could not be asked or refused: nothing was deleted here."""


class ServiceToken:
    """Client credentials at the IdP for `phr/erase`."""

    def __init__(self, token_url: str, client_id: str, secret: str) -> None:
        self.token_url, self.client_id, self.secret = token_url, client_id, secret
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token and self._token[0] > time.time():
                return self._token[1]
            user = urllib.parse.quote(self.client_id, safe="")
            password = urllib.parse.quote(self.secret, safe="")
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            req = urllib.request.Request(  # noqa: S310 - the configured issuer
                self.token_url,
                data=urllib.parse.urlencode(
                    {"grant_type": "client_credentials", "scope": ERASE_SCOPE}
                ).encode(),
                headers={"Authorization": f"Basic {basic}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
                    data = json.load(resp)
            except (OSError, ValueError) as exc:
                log.warning("no erase token from the IdP (%s)", type(exc).__name__)
                raise EraseUnavailable("no token from the IdP") from None
            ttl = max(int(data.get("expires_in", 60)) - 30, 5)
            self._token = (time.time() + ttl, data["access_token"])
            return self._token[1]


class PhrEraser:
    """`POST {PHR_FHIR_URL}/$erase` with a Parameters body naming each Patient by its code."""

    def __init__(self, fhir_url: str, token: Callable[[], str]) -> None:
        self.url = fhir_url.rstrip("/") + "/$erase"
        self.token = token

    def erase(self, pairs: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Erase these Patients' records; returns the server's counts."""
        pairs = list(dict.fromkeys(pairs))
        if not pairs:
            return {"patients": 0, "resources": 0}
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
        req = urllib.request.Request(  # noqa: S310 - the configured PHR server
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": "Bearer " + self.token(),
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310
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


def eraser(settings: Settings) -> PhrEraser:
    token = ServiceToken(
        settings.issuer + "/token",
        settings.option("PHR_CONSENT_SERVICE_CLIENT_ID"),
        settings.secret("PHR_CONSENT_SERVICE_SECRET"),
    )
    return PhrEraser(settings.urls["fhir"], token)
