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
  A refused transaction is split by the pipeline until the refused rows stand alone. A 500
  that repeats for one batch while the server still handles an empty transaction is taken as
  the server failing on that content and refused the same way (Refused, status 500), so one
  poisoned entry cannot block a file forever; a server that is down, busy (429, 503) or behind
  a failing gateway (502, 504) stops the run instead ("run again to resume").
  This matches phr_server/API.md ("Writing (connectors)"); tests/connectors/
  test_phr_server_e2e.py loads a synthetic city into the real server over HTTP.
  Auth: Bearer token from the IdP's client-credentials grant (TokenSource)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.http import (
    HttpError,
    JsonClient,
    ServerError,
    TokenError,
    TokenSource,
    TransportError,
)
from connectors.mapping.common import Entry

FHIR_JSON = "application/fhir+json"
# Answers that say the server is down or busy, not that it failed on what it was sent.
UNAVAILABLE = {429, 502, 503, 504}
_ELEMENT = re.compile(r"[A-Z][A-Za-z]{1,40}(\.[a-z][A-Za-z0-9]{0,40}(\[[0-9]{1,4}\])?){0,8}")
_ENTRY = re.compile(r"Bundle\.entry\[([0-9]{1,5})\]\.resource(\.|$)")


@dataclass
class Outcomes:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class Refused(RuntimeError):
    """The server refused a transaction (4xx other than auth), or failed on it again and again
    (5xx) while handling others; the reason is a safe summary, `elements` the FHIR elements
    (`Immunization.occurrenceDateTime`) its OperationOutcome points at."""

    def __init__(
        self,
        status: int,
        reason: str,
        elements: tuple[str, ...] = (),
        named: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.elements = elements
        # fullUrls of the entries whose resource the OperationOutcome points at: where the
        # pipeline looks first when it splits the batch (a hint; each is verified alone)
        self.named = named


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


def refused_elements(body: Any, bundle: dict[str, Any]) -> tuple[str, ...]:
    """The elements an OperationOutcome's issues point at, as `Type.element` of our own
    entries (`Bundle.entry[2].resource.x` → `Immunization.x`). Only paths of the expected shape
    are kept: the server's text never reaches a report."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ()
    entries = bundle.get("entry", [])
    out: list[str] = []
    for issue in body.get("issue", [])[:10]:
        for expr in (issue.get("expression") or [])[:3] if isinstance(issue, dict) else ():
            if not isinstance(expr, str):
                continue
            m = _ENTRY.match(expr)
            if m is not None:
                i = int(m[1])
                if i >= len(entries):
                    continue
                expr = entries[i]["resource"]["resourceType"] + expr[m.end() - len(m[2]) :]
            if _ELEMENT.fullmatch(expr) and expr not in out:
                out.append(expr)
    return tuple(out)


def refused_entries(body: Any, bundle: dict[str, Any]) -> frozenset[str]:
    """The fullUrls of the entries an OperationOutcome's issues point into
    (`Bundle.entry[3].resource...`)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return frozenset()
    entries = bundle.get("entry", [])
    out: set[str] = set()
    for issue in body.get("issue", []):
        for expr in (issue.get("expression") or []) if isinstance(issue, dict) else ():
            m = _ENTRY.match(expr) if isinstance(expr, str) else None
            if m is not None and int(m[1]) < len(entries):
                out.add(str(entries[int(m[1])].get("fullUrl")))
    return frozenset(out)


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
        failed_on_it = 0  # 500s for this batch
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
                if exc.status == 401:  # still refused with a fresh token: no row is at fault
                    raise
                if exc.status == 409 and attempt <= self.retries:  # concurrent update: retry
                    self.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                elements = refused_elements(exc.body, bundle)
                named = refused_entries(exc.body, bundle)
                raise Refused(exc.status, _safe_reason(exc.body), elements, named) from None
            except ServerError as exc:
                if exc.status not in UNAVAILABLE:
                    failed_on_it += 1
                    if failed_on_it >= 2 and bundle["entry"] and self._handles_transactions():
                        elements = refused_elements(exc.body, bundle)
                        reason = f"the PHR server failed on it (HTTP {exc.status})"
                        raise Refused(exc.status, reason, elements) from None
                if attempt > self.retries:
                    raise
                self.sleep(self.backoff * (2 ** (attempt - 1)))
            except TransportError:
                if attempt > self.retries:
                    raise
                self.sleep(self.backoff * (2 ** (attempt - 1)))

    def _handles_transactions(self) -> bool:
        """Whether the server still answers a transaction: an empty one, which it refuses
        (400, nothing to do) or acknowledges. Then a batch it keeps failing on is at fault, not
        the server; when the server is down or fails on everything, this fails too. (The
        pipeline also stops when every part of a split batch fails: see Connector._isolate.)"""
        try:
            self.client.request(
                "POST",
                "/",
                json_body=transaction([]),
                headers=self._headers(),
                content_type=FHIR_JSON,
            )
        except HttpError as exc:
            body = exc.body
            return isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"
        except TransportError:
            return False
        return True

    def close(self) -> None:
        for client in self._clients:
            client.close()
