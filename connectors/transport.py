"""Transport to the PHR server: FHIR transaction Bundles of conditional updates, with retry.

PHR server contract (assumed; the server is built concurrently):
  POST {fhir}/  Bundle type=transaction, entries with fullUrl urn:uuid:… and
                request {method: PUT, url: "Type?identifier=system|value"}; references between
                entries use the urn:uuid fullUrls.
  → 200 Bundle type=transaction-response, one entry per request entry, in order, with
    response.status "201 Created" (new), "200 OK" (changed) or "200 OK" plus
    response.outcome (OperationOutcome) whose issue diagnostics is "unchanged".
  → 4xx OperationOutcome when the transaction is refused (nothing is stored); 409 (a
    concurrent update) is retried like a 5xx.
  This matches phr_server/API.md ("Writing (connectors)"); tests/connectors/
  test_phr_server_e2e.py loads a synthetic city into the real server over HTTP.
  Auth: Bearer token from the IdP's client-credentials grant (TokenSource)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.http import HttpError, JsonClient, TokenError, TokenSource, TransportError
from connectors.mapping.common import Entry

FHIR_JSON = "application/fhir+json"


@dataclass
class Outcomes:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class Refused(RuntimeError):
    """The server refused a transaction (4xx other than auth); the reason is a safe summary."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class Sink(Protocol):
    def send(self, entries: list[Entry]) -> Outcomes: ...


def transaction(entries: list[Entry]) -> dict[str, Any]:
    """A transaction Bundle of conditional updates; later duplicates of one identity replace
    earlier ones in place (a corrected row later in the file wins)."""
    by_url: dict[str, Entry] = {}
    for e in entries:
        by_url[e.full_url] = e
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": e.resource,
                "request": {"method": "PUT", "url": e.request_url},
            }
            for url, e in by_url.items()
        ],
    }


def classify(response_bundle: Any) -> Outcomes:
    """Count a transaction-response: 201 → created; 200 with an "unchanged" outcome →
    unchanged; other 2xx → updated."""
    out = Outcomes()
    if (
        not isinstance(response_bundle, dict)
        or response_bundle.get("type") != "transaction-response"
    ):
        raise TransportError("answer is not a transaction-response Bundle")
    for entry in response_bundle.get("entry", []):
        resp = entry.get("response") or {}
        status = str(resp.get("status", ""))
        if status.startswith("201"):
            out.created += 1
        elif status.startswith("2"):
            diags = " ".join(
                str(i.get("diagnostics", "")) for i in (resp.get("outcome") or {}).get("issue", [])
            )
            if "unchanged" in diags.lower():
                out.unchanged += 1
            else:
                out.updated += 1
        else:
            raise TransportError(f"entry answered {status or 'without a status'}")
    return out


def _safe_reason(body: Any) -> str:
    """Issue codes and FHIRPath expressions from an OperationOutcome; never diagnostics text,
    which may quote the submitted values."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        parts = []
        for issue in body.get("issue", [])[:3]:
            expr = ",".join(issue.get("expression", []) or [])
            parts.append(f"{issue.get('code', 'error')}{' at ' + expr if expr else ''}")
        if parts:
            return "; ".join(parts)
    return "refused"


class FhirTransport:
    """POSTs transactions to the PHR server, retrying network failures, 5xx and 429 with
    exponential backoff, and refreshing the token once on 401."""

    def __init__(
        self,
        fhir_url: str,
        tokens: TokenSource | None,
        *,
        ca_file: str | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = fhir_url.rstrip("/")
        self._ca_file = ca_file
        self._local = threading.local()  # one kept-alive connection per sending thread
        self._clients: list[JsonClient] = []
        self.tokens = tokens
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    @property
    def client(self) -> JsonClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = JsonClient(self.base, ca_file=self._ca_file, timeout=300)
            self._clients.append(client)
        return client

    def _headers(self, refresh: bool = False) -> dict[str, str]:
        h = {"Accept": FHIR_JSON}
        if self.tokens is not None:
            h["Authorization"] = "Bearer " + self.tokens.token(self.base, refresh=refresh)
        return h

    def send(self, entries: list[Entry]) -> Outcomes:
        bundle = transaction(entries)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self.client.request(
                    "POST",
                    "/",
                    json_body=bundle,
                    headers=self._headers(refreshed),
                    content_type=FHIR_JSON,
                )
                return classify(resp.body)
            except TokenError:
                raise  # the IdP refused our credentials: no row is at fault, stop the run
            except HttpError as exc:
                if exc.status == 401 and not refreshed and self.tokens is not None:
                    refreshed = True
                    continue
                if exc.status == 409 and attempt <= self.retries:  # concurrent update: retry
                    self.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                raise Refused(exc.status, _safe_reason(exc.body)) from None
            except TransportError:
                if attempt > self.retries:
                    raise
                self.sleep(self.backoff * (2 ** (attempt - 1)))

    def close(self) -> None:
        for client in self._clients:
            client.close()
