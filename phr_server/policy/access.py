"""A request's Access: who is asking and what they may touch, and from that the SQL condition
every row the repository hands out must meet (`visible`). Built only by the policy point
(`phr_server.policy.authorize`), read by the repository, the audit and the pairwise ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from phr_core.pairwise_ids import SectorIds
from phr_core.tokens import AccessToken
from phr_server.indexing import TYPES
from phr_server.models import Compartment, StoredResource, table_of
from phr_server.policy.scopes import Scope
from phr_server.search import token_clause  # granular scopes are search criteria

R = table_of(StoredResource)
C = table_of(Compartment)


@dataclass
class Access:
    """Who is asking and what they may touch; built once per request by the policy point."""

    token: AccessToken
    raw_token: str
    scopes: list[Scope]
    patient_ids: frozenset[str] = frozenset()
    relationships: dict[str, str] = field(default_factory=dict)
    # An app's sector mapping of ids (phr_server.pairwise); None: the stored ids are served.
    ids: SectorIds | None = None

    @property
    def system(self) -> bool:
        return self.token.grant_id is None and not self.token.first_party

    @property
    def municipality(self) -> str | None:
        return self.token.municipality

    def scopes_for(self, rtype: str, perm: str) -> list[Scope]:
        contexts = ("system",) if self.system else ("patient", "user")
        return [
            s
            for s in self.scopes
            if s.context in contexts and s.type in ("*", rtype) and perm in s.perms
        ]

    def allows(self, rtype: str, perm: str) -> bool:
        return bool(self.scopes_for(rtype, perm))

    def visible(self, rtype: str, perm: str) -> ColumnElement[bool]:
        """The SQL condition on `fhir_resource` rows of `rtype` this request may see."""
        scopes = self.scopes_for(rtype, perm)
        if not scopes:
            return false()
        conds: list[ColumnElement[bool]] = [R.c.resource_type == rtype]
        if any(not s.filters for s in scopes):
            narrowing: ColumnElement[bool] = true()
        else:
            narrowing = or_(
                *(
                    and_(*(token_clause(rtype, p, v) for p, v in s.filters))
                    for s in scopes
                    if all(_is_token_param(rtype, p) for p, _ in s.filters)
                )
            )
        conds.append(narrowing)
        if self.system:
            conds.append(R.c.municipality == (self.municipality or ""))
            return and_(*conds)
        spec = TYPES[rtype]
        if rtype == "Patient" or spec.compartment:
            if not self.patient_ids:
                return false()
            conds.append(
                exists(
                    select(1).where(
                        C.c.resource_type == R.c.resource_type,
                        C.c.resource_id == R.c.id,
                        C.c.patient_id.in_(sorted(self.patient_ids)),
                    )
                )
            )
        elif rtype != "Organization":
            return false()  # Provenance and the like are for the connectors only
        return and_(*conds)

    def visible_sql(self, rtype: str, perm: str) -> tuple[str, tuple[str, ...]] | None:
        """`visible()` as an SQL condition on `fhir_resource r` with `?` placeholders, and its
        parameters, for the shapes without granular filters: the read by id runs it without
        building and compiling an expression (a third of a read's CPU). None: use visible().
        tests/phr_server/test_read_path.py checks that both select the same rows."""
        scopes = self.scopes_for(rtype, perm)
        if not scopes:
            return "1 = 0", ()
        if all(s.filters for s in scopes):
            return None
        if self.system:
            return "r.municipality = ?", (self.municipality or "",)
        if rtype == "Patient" or TYPES[rtype].compartment:
            if not self.patient_ids:
                return "1 = 0", ()
            ids = tuple(sorted(self.patient_ids))
            marks = ", ".join("?" * len(ids))  # placeholders only: the ids are parameters
            sql = (
                # S608: fixed SQL; only '?' placeholders are interpolated, the ids are bound
                # parameters
                "EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.resource_type = r.resource_type"  # noqa: S608 - see above
                f" AND c.resource_id = r.id AND c.patient_id IN ({marks}))"
            )
            return sql, ids
        if rtype == "Organization":
            return "1 = 1", ()
        return "1 = 0", ()


def _is_token_param(rtype: str, name: str) -> bool:
    p = TYPES[rtype].params.get(name)
    return p is not None and p.kind == "token"
