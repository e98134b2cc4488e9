"""The portal's client of the PHR server (FHIR R4), reading with the signed-in person's own
authority.

How that authority is established (see also phr_server/policy.py and idp/clients.py):
* the portal's client at the IdP is static, in the PHR sector, marked `phr_first_party`, and
  may ask only for sign-in and `user/…` read scopes (portal.auth.PORTAL_SCOPE);
* the IdP gives it an access token for the PHR server (audience PHR_FHIR_URL, `sub` the
  PHR-sector subject, sealed like every resource-server token) with the claim
  `phr_first_party: true`, which only the IdP's signature can vouch for and which the IdP sets
  for no other client and never together with a consent grant;
* the PHR server's policy point accepts such a token without a grant, read and search only, for
  the Patients the consent service lists for that subject: their own and their children's.
So the portal sees exactly what the person may see, the PHR server audits each read as the
portal's, and no app's consent is involved.

The tokens stay server side (portal.token_store); `for_session()` builds a client for
the current browser session. Errors: `SignedOut` (sign in again), `Unavailable` (try later).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from phr_core import budgets, request_ids
from phr_core.webapp import settings
from portal.auth import ResourceRefused, SignInError, access_token
from portal.token_store import TokensGone

log = logging.getLogger(__name__)

TIMEOUT_S = budgets.PORTAL_TO_PHR_S  # longer than the PHR server's own budget for consent
MAX_PAGES = 20  # a records view reads at most this many pages of one search
PAGE_SIZE = 200
CHUNK = 64 * 1024


class SignedOut(Exception):
    """No valid tokens for this session (signed out, expired, revoked): sign in again."""


class TokenRefused(SignedOut):
    """The PHR server refused the token (401)."""


class Unavailable(Exception):
    """The PHR server (or the IdP) cannot answer now."""


@dataclass(frozen=True)
class Page:
    """One page of a search: the resources and the opaque cursors to the neighbours."""

    resources: list[dict[str, Any]]
    next_cursor: str | None = None
    previous_cursor: str | None = None


def follow(read: Callable[[str | None], Page], limit: int) -> Iterator[Page]:
    """Every page of one search, `read(cursor)` after `read(None)`, while the server gives a
    next cursor. A server is another organisation's: one that repeats a cursor (a bug, or
    hostile) or is still paging after `limit` pages would keep the reader going without end,
    so that raises Unavailable (the caller's "could not read" answer), never a partial end."""
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(limit):
        page = read(cursor)
        yield page
        cursor = page.next_cursor
        if not cursor:
            return
        if cursor in seen:
            log.warning("a PHR server repeated a search's next cursor; the read is stopped")
            raise Unavailable("the PHR server repeated a next cursor")
        seen.add(cursor)
    log.warning("a PHR server was still paging after %d pages; the read is stopped", limit)
    raise Unavailable(f"the PHR server was still paging after {limit} pages")


@dataclass
class PhrClient:
    base_url: str
    token: Callable[[], str]  # a valid access token; raises SignedOut
    timeout: float = TIMEOUT_S

    # --- transport -----------------------------------------------------------------------

    def _open(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        url = self.base_url.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(  # noqa: S310 - the configured PHR server
            url,
            headers=request_ids.outgoing(
                {"Authorization": "Bearer " + self.token(), "Accept": "application/fhir+json"}
            ),
        )
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - as above
        except urllib.error.HTTPError as exc:
            diagnostic = _diagnostic(exc)
            exc.close()
            if exc.code == 401:
                raise TokenRefused(diagnostic) from None
            if exc.code in (403, 404):
                # Not reachable for this person (the PHR server answers both alike).
                raise NotReachable(diagnostic) from None
            log.warning("PHR server answered %s", exc.code)
            raise Unavailable(diagnostic) from None
        except OSError as exc:
            log.warning("PHR server unreachable (%s)", type(exc).__name__)
            raise Unavailable("the PHR server cannot be reached") from None

    def _json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        with self._open(path, params) as resp:
            try:
                doc = json.load(resp)
            except ValueError:
                raise Unavailable("the PHR server answered something other than JSON") from None
        if not isinstance(doc, dict):
            raise Unavailable("the PHR server answered something other than a resource")
        return doc

    # --- the typed API ---------------------------------------------------------------------

    def search(self, rtype: str, params: list[tuple[str, str]] | None = None) -> Page:
        """One page of `GET /{rtype}?…` (only `match` entries; a cursor continues it)."""
        bundle = self._json(f"/{rtype}", params)
        resources = [
            e["resource"]
            for e in bundle.get("entry", [])
            if isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and (e.get("search") or {}).get("mode", "match") == "match"
        ]
        cursors: dict[str, str | None] = {"next": None, "previous": None}
        for link in bundle.get("link", []):
            if link.get("relation") in cursors:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(link.get("url", "")).query)
                cursors[link["relation"]] = (q.get("_cursor") or [None])[0]
        return Page(resources, cursors["next"], cursors["previous"])

    def search_all(self, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Every match of a search, following next links (at most MAX_PAGES pages)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = self.search(
                rtype,
                [*params, ("_count", str(PAGE_SIZE))] + ([("_cursor", cursor)] if cursor else []),
            )
            out.extend(page.resources)
            cursor = page.next_cursor
            if not cursor:
                break
        return out

    def patients(self) -> list[dict[str, Any]]:
        """The Patients the person may see: their own and their children's."""
        return self.search_all("Patient", [])

    def records(
        self, rtype: str, patient_id: str, params: list[tuple[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """One Patient's resources of one type (Observation, Immunization,
        ExplanationOfBenefit, …), oldest first."""
        return self.search_all(rtype, [("patient", patient_id), *(params or [])])

    def audit_events(self, count: int = 20, cursor: str | None = None) -> Page:
        """The access history of the person and their children, newest first, one page."""
        params = [("_sort", "-date"), ("_count", str(count))]
        if cursor:
            params.append(("_cursor", cursor))
        return self.search("AuditEvent", params)

    def everything(self, patient_id: str) -> Iterator[bytes]:
        """`Patient/{id}/$everything` as the server's bytes, in chunks, never whole in memory.
        The request is made (and refused, if it is) before the first chunk is handed out."""
        resp = self._open(f"/Patient/{urllib.parse.quote(patient_id, safe='')}/$everything")

        def chunks() -> Iterator[bytes]:
            with resp:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        return
                    yield block

        return chunks()


class NotReachable(Exception):
    """The PHR server has nothing this person may see there (403 or 404)."""


def _diagnostic(exc: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(exc.read(8192) or b"{}")
        return str(doc["issue"][0].get("diagnostics", ""))[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OSError):
        return f"HTTP {exc.code}"


def for_session(server: str | None = None) -> PhrClient:
    """A client for the signed-in person of this request, at the configured PHR server or at
    `server` (another city's PHR server, by its FHIR base URL, with a token for it)."""

    def token() -> str:
        try:
            return access_token(server)
        except TokensGone as exc:
            raise SignedOut(str(exc)) from None
        except ResourceRefused:
            raise Unavailable("the IdP issues no token for this PHR server") from None
        except SignInError:
            raise Unavailable("the IdP cannot be reached") from None

    return PhrClient(server or settings().urls["fhir"], token)
