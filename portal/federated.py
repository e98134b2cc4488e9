"""Reading a person's records from every PHR server that holds them.

A family that moved has records in two cities, and each city's records sit on the PHR server
the federation names for that city (federation.directory; a single-city installation has one
server for every city). For one request this module lists the person's (municipality, code)
links from the consent service's own tables, finds each city's server, and reads each server
with the person's first-party token for that server (portal.auth.access_token with
`resource`). A server that cannot be reached costs only its cities' records: the pages show
the rest and name the cities that could not be read (`unreachable_cities`), never fail.

Which Patient is whose: the PHR server's Patient id is derived from (municipality, code)
(phr_core.identifiers.patient_id), so every record read for a Patient id carries its source
city without trusting the server to say so.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from flask import current_app, g
from sqlalchemy import select

from consent import linkage
from consent.i18n import current_language
from consent.models import Municipality
from federation import directory
from phr_core.identifiers import patient_id
from phr_core.webapp import database, settings
from portal import phr

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One of the person's Patients: whose (relationship), in which city, on which server."""

    municipality: str
    code: str
    relationship: str  # self | child
    patient_id: str
    server: str  # the PHR server's FHIR base URL


@dataclass
class Reader:
    """The signed-in person's PHR servers for one request."""

    subject: str
    sources: list[Source]
    city_names: dict[str, tuple[str, str]]  # municipality → (ja, en)
    client_for: Callable[[str], phr.PhrClient]
    home: str  # the configured PHR server (its 401 means signing in again)
    failed: set[str] = field(default_factory=set)  # servers that could not be read
    _clients: dict[str, phr.PhrClient] = field(default_factory=dict)

    # --- servers ---------------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:
        return list(dict.fromkeys(s.server for s in self.sources))

    def client(self, server: str) -> phr.PhrClient:
        if server not in self._clients:
            self._clients[server] = self.client_for(server)
        return self._clients[server]

    def on(self, server: str, read: Callable[[phr.PhrClient], T], default: T) -> T:
        """`read(client)` against one server; `default` (and the server noted as failed) when
        it cannot answer now. SignedOut and NotReachable go to the caller, except another
        city's server refusing its token: that server is left out, the sign-in stays."""
        if server in self.failed:
            return default
        try:
            return read(self.client(server))
        except phr.TokenRefused:
            if server == self.home:
                raise
            log.warning("another city's PHR server refused its token; its cities are left out")
            self.failed.add(server)
            return default
        except phr.Unavailable:
            log.warning("a PHR server could not be read; its cities are left out")
            self.failed.add(server)
            return default

    @property
    def everything_failed(self) -> bool:
        return bool(self.servers) and self.failed >= set(self.servers)

    def each_server(self, read: Callable[[phr.PhrClient], list[T]]) -> Iterator[tuple[str, T]]:
        """(server, item) for every item `read` finds on each reachable server."""
        for server in self.servers:
            none: list[T] = []
            for item in self.on(server, read, none):
                yield server, item

    # --- cities ----------------------------------------------------------------------------

    def city(self, municipality: str, lang: str | None = None) -> str:
        ja, en = self.city_names.get(municipality, (municipality, municipality))
        return ja if (lang or current_language()) == "ja" else en

    def source(self, pid: str) -> Source | None:
        return next((s for s in self.sources if s.patient_id == pid), None)

    def unreachable_cities(self, lang: str | None = None) -> list[str]:
        """The names of the cities whose server could not be read in this request."""
        munis = dict.fromkeys(s.municipality for s in self.sources if s.server in self.failed)
        return [self.city(m, lang) for m in munis]

    # --- records ---------------------------------------------------------------------------

    def patients(self) -> list[tuple[Source, dict[str, Any]]]:
        """Each Patient the person may see, with the link that makes it theirs."""
        out = []
        for _server, pt in self.each_server(lambda c: c.patients()):
            src = self.source(str(pt.get("id", "")))
            if src is not None:
                out.append((src, pt))
        return out

    def records(
        self, sources: list[Source], rtype: str, params: list[tuple[str, str]] | None = None
    ) -> list[tuple[Source, dict[str, Any]]]:
        """One type's resources of these Patients, each with its source."""
        out: list[tuple[Source, dict[str, Any]]] = []
        for src in sources:
            read = functools.partial(_records_of, rtype=rtype, pid=src.patient_id, params=params)
            none: list[dict[str, Any]] = []
            out.extend((src, r) for r in self.on(src.server, read, none))
        return out


def _records_of(
    client: phr.PhrClient, *, rtype: str, pid: str, params: list[tuple[str, str]] | None
) -> list[dict[str, Any]]:
    return client.records(rtype, pid, params)


def reader(subject: str) -> Reader:
    """The Reader of the signed-in person of this request (made once per request)."""
    existing = g.get("phr_reader")
    if isinstance(existing, Reader) and existing.subject == subject:
        return existing
    today = date.today()
    with database().session() as s:
        links = [
            (muni, code, rel)
            for muni, code, rel, ends in linkage.patients(s, subject)
            if ends is None or ends > today
        ]
        names = {m.code: (m.name_ja, m.name_en) for m in s.scalars(select(Municipality))}
    found = directory.of_app(current_app)
    home = settings().urls["fhir"].rstrip("/")
    sources = []
    for muni, code, rel in links:
        server = found.server_for(muni)
        sources.append(
            Source(muni, code, rel, patient_id(muni, code), server.resource if server else home)
        )
    made = Reader(subject, sources, names, phr.for_session, home)
    g.phr_reader = made
    return made
