"""Trust chains (OpenID Federation 1.0 sections 4 and 10): from an entity up to a trust anchor
we know, every link checked, the metadata policies applied, cached until the chain expires.

A chain is [leaf Entity Configuration, Subordinate Statement about the leaf, …, Subordinate
Statement issued by the anchor, anchor's Entity Configuration]. Every statement must verify
with the key its superior vouches for (the Subordinate Statement's `jwks`), and the anchor's
own configuration with the keys we were configured with, not the ones it publishes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from federation import jose, policy, trust_marks
from federation.entity import statement
from federation.entity.fetch import Fetcher, acceptable_entity_id, with_query
from federation.entity.schema import ChainMetadata, EntityStatement, Metadata, NamingConstraints
from federation.errors import (
    BAD_SIGNATURE,
    EXPIRED,
    LOOP,
    MALFORMED,
    NAMING,
    NOT_FOUND,
    PATH_TOO_LONG,
    UNKNOWN_ANCHOR,
    UNREACHABLE,
    FederationError,
)

MAX_DEPTH = 5  # intermediates we follow before giving up; real federations are 1–3 deep


@dataclass(frozen=True)
class TrustChain:
    """A validated chain and what it establishes about its leaf."""

    entity_id: str
    trust_anchor: str
    statements: list[EntityStatement] = field(repr=False)
    exp: int
    metadata: ChainMetadata  # per entity type, policies applied, typed
    trust_marks: list[dict[str, Any]]  # verified trust mark claims
    trust_mark_entries: list[dict[str, str]] = field(default_factory=list, repr=False)

    @property
    def jwts(self) -> list[str]:
        """The chain as the spec's `trust_chain` array of signed statements."""
        return [s.jwt for s in self.statements]

    def has_trust_mark(self, mark_type: str) -> bool:
        return any(m.get("trust_mark_type") == mark_type for m in self.trust_marks)


def _host_matches(host: str, pattern: str) -> bool:
    """RFC 5280 4.2.1.10 for URIs: `.example.jp` is any host below example.jp, `example.jp`
    that host alone."""
    pattern = pattern.lower()
    if pattern.startswith("."):
        return host.endswith(pattern)
    return host == pattern


def _check_name(entity_id: str, names: NamingConstraints, authority: str) -> None:
    host = (urlsplit(entity_id).hostname or "").lower()
    if any(_host_matches(host, p) for p in names.excluded) or (
        names.permitted and not any(_host_matches(host, p) for p in names.permitted)
    ):
        raise FederationError(NAMING, f"{authority} does not allow entity ids like {entity_id}")


class Resolver:
    """Resolves and validates chains to the configured trust anchors.

    `trust_anchors` maps each anchor's entity id to its JWK Set, configured out of band
    (PHR_FEDERATION_TRUST_ANCHOR_FILE); an anchor's self-published keys are never trusted on
    their own. Validated chains are cached until they expire; `fresh=True` skips the cache,
    for decisions that must see a removal at once.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        trust_anchors: dict[str, dict[str, Any]],
        *,
        clock: Callable[[], float] = time.time,
        allow_http_loopback: bool = True,
        check_trust_mark_status: bool = False,
    ) -> None:
        self.fetcher = fetcher
        self.trust_anchors = dict(trust_anchors)
        self.clock = clock
        self.allow_http_loopback = allow_http_loopback
        self.check_trust_mark_status = check_trust_mark_status
        self._cache: dict[str, TrustChain] = {}
        self._lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------

    def resolve(self, entity_id: str, *, fresh: bool = False) -> TrustChain:
        """A valid chain from `entity_id` to one of our anchors, or FederationError saying why
        none could be built (the first failure found, one reason code per cause)."""
        now = self.clock()
        if not fresh:
            with self._lock:
                cached = self._cache.get(entity_id)
            if cached is not None and cached.exp > now:
                return cached
        chain = self._build(entity_id, now)
        with self._lock:
            self._cache[entity_id] = chain
        return chain

    def forget(self, entity_id: str) -> None:
        with self._lock:
            self._cache.pop(entity_id, None)

    # --- fetching ----------------------------------------------------------------------------

    def _get_jwt(self, url: str, what: str) -> str:
        fetched = self.fetcher.get(url)
        if fetched.status == 404:
            raise FederationError(NOT_FOUND, f"{what}: not found at {url}")
        if fetched.status != 200:
            raise FederationError(UNREACHABLE, f"{what}: HTTP {fetched.status} from {url}")
        return fetched.body.strip()

    def _configuration(self, entity_id: str, now: float) -> EntityStatement:
        """An entity's own configuration, self-signed with a key it lists."""
        what = f"entity configuration of {entity_id}"
        if not acceptable_entity_id(entity_id, allow_http_loopback=self.allow_http_loopback):
            raise FederationError(MALFORMED, f"{entity_id!r} is not an https entity identifier")
        token = self._get_jwt(statement.configuration_url(entity_id), what)
        ec = statement.parse(token, what=what)
        if ec.iss != entity_id or ec.sub != entity_id:
            raise FederationError(MALFORMED, f"{what}: iss and sub must both be {entity_id}")
        jose.verify(token, ec.jwks, statement.TYP, what=what, now=now)
        return ec

    def _subordinate(self, superior: EntityStatement, subject: str, now: float) -> EntityStatement:
        what = f"statement of {superior.sub} about {subject}"
        endpoint = superior.endpoints.fetch
        if not endpoint:
            raise FederationError(MALFORMED, f"{superior.sub} publishes no fetch endpoint")
        try:
            token = self._get_jwt(with_query(endpoint, sub=subject), what)
        except FederationError as exc:
            if exc.reason == NOT_FOUND:
                raise FederationError(
                    NOT_FOUND, f"{superior.sub} does not (or no longer) vouch for {subject}"
                ) from None
            raise
        ss = statement.parse(token, what=what)
        if ss.iss != superior.sub or ss.sub != subject:
            raise FederationError(MALFORMED, f"{what}: wrong iss or sub")
        jose.verify(token, superior.jwks, statement.TYP, what=what, now=now)
        return ss

    # --- building --------------------------------------------------------------------------

    def _build(self, entity_id: str, now: float) -> TrustChain:
        leaf = self._configuration(entity_id, now)
        if entity_id in self.trust_anchors:
            self._verify_anchor(leaf, now)
            return self._validate([leaf], now)
        upward = self._climb(leaf, [entity_id], now)
        return self._validate([leaf, *upward], now)

    def _verify_anchor(self, ec: EntityStatement, now: float) -> None:
        """A trust anchor's configuration must verify with the keys we were configured with,
        not only the ones it publishes."""
        anchor_keys = self.trust_anchors[ec.sub]
        jose.verify(ec.jwt, anchor_keys, statement.TYP, what=f"trust anchor {ec.sub}", now=now)

    def _climb(self, ec: EntityStatement, path: list[str], now: float) -> list[EntityStatement]:
        """The statements above `ec` up to an anchor: tries each authority hint in turn and
        reports the first failure when none leads to a trust anchor."""
        if not ec.authority_hints:
            raise FederationError(
                UNKNOWN_ANCHOR, f"{ec.sub} has no authority_hints and is not a trust anchor we know"
            )
        failures: list[FederationError] = []
        for hint in ec.authority_hints:
            try:
                if hint in path:
                    raise FederationError(LOOP, " → ".join([*path, hint]))
                if len(path) > MAX_DEPTH:
                    raise FederationError(
                        PATH_TOO_LONG, f"more than {MAX_DEPTH} levels above {path[0]}"
                    )
                superior = self._configuration(hint, now)
                if hint in self.trust_anchors:
                    self._verify_anchor(superior, now)
                sub_statement = self._subordinate(superior, ec.sub, now)
                # The entity's configuration must be signed with a key its superior vouches for.
                jose.verify(
                    ec.jwt,
                    sub_statement.jwks,
                    statement.TYP,
                    what=f"entity configuration of {ec.sub} (key from {hint})",
                    now=now,
                )
                if hint in self.trust_anchors:
                    return [sub_statement, superior]
                return [sub_statement, *self._climb(superior, [*path, hint], now)]
            except FederationError as exc:
                failures.append(exc)
        raise failures[0]

    def _validate(self, chain: list[EntityStatement], now: float) -> TrustChain:
        leaf, anchor = chain[0], chain[-1]
        subordinates = chain[1:-1]
        # Section 10.2: each statement verifies with the keys in the statement above it, i.e.
        # those the issuer's own superior vouches for, not merely the keys the issuer publishes.
        for lower, upper in itertools.pairwise(chain):
            jose.verify(
                lower.jwt, upper.jwks, statement.TYP, what=f"statement by {lower.iss}", now=now
            )
        for k, ss in enumerate(subordinates, start=1):
            limit = ss.constraints.max_path_length
            if limit is not None and k - 1 > limit:
                raise FederationError(
                    PATH_TOO_LONG, f"{ss.iss} allows {limit} intermediates, the chain has {k - 1}"
                )
            names = ss.constraints.naming
            if names is not None:
                # Every entity below the constraining authority: the leaf and intermediates.
                for below in [leaf.sub, *(x.iss for x in subordinates[: k - 1])]:
                    _check_name(below, names, ss.iss)
        exp = min(s.exp for s in chain)
        if exp <= now - jose.LEEWAY_S:
            raise FederationError(EXPIRED, "the chain has expired")
        metadata = ChainMetadata.parse(self._metadata(leaf, subordinates))
        entries = self._trust_marks(leaf, anchor, now)
        marks = [claims for claims, _ in entries]
        return TrustChain(
            leaf.sub,
            anchor.sub,
            chain,
            exp,
            metadata,
            marks,
            [{"trust_mark_type": c["trust_mark_type"], "trust_mark": t} for c, t in entries],
        )

    def _metadata(self, leaf: EntityStatement, subordinates: list[EntityStatement]) -> Metadata:
        """Leaf metadata, overridden by the immediate superior's `metadata`, then every
        superior's policy (trust anchor first) applied; entity types a superior does not
        allow (`constraints.allowed_entity_types`) are dropped."""
        metadata = dict(leaf.metadata)  # the leaf's statement stays as it was sent
        if subordinates:
            for etype, override in subordinates[0].metadata.items():
                metadata[etype] = {**metadata.get(etype, {}), **override}
        for ss in subordinates:
            allowed = ss.constraints.allowed_entity_types
            if allowed is not None:
                for etype in list(metadata):
                    if etype != "federation_entity" and etype not in allowed:
                        del metadata[etype]
        policies = [
            (ss.metadata_policy, list(ss.metadata_policy_crit)) for ss in reversed(subordinates)
        ]
        return {etype: policy.resolve(policies, md, etype) for etype, md in metadata.items()}

    def _trust_marks(
        self, leaf: EntityStatement, anchor: EntityStatement, now: float
    ) -> list[tuple[dict[str, Any], str]]:
        """The leaf's trust marks that verify (claims, token); invalid ones are ignored, as
        the spec says."""
        allowed = anchor.trust_mark_issuers
        out: list[tuple[dict[str, Any], str]] = []
        for entry in leaf.trust_marks:
            token = entry.trust_mark
            try:
                iss, _ = trust_marks.issuer_of(token)
                issuer_jwks = (
                    anchor.jwks if iss == anchor.sub else self.resolve(iss).statements[0].jwks
                )
                claims = trust_marks.verify(
                    token,
                    subject=leaf.sub,
                    issuer_jwks=issuer_jwks,
                    allowed_issuers=allowed,
                    now=now,
                )
                if self.check_trust_mark_status and self.mark_status(token, iss) != "active":
                    continue
                out.append((claims, token))
            except FederationError:
                continue
        return out

    def mark_status(self, token: str, issuer: str) -> str:
        """Ask the issuer's status endpoint whether a mark is still active."""
        issuer_chain = self.resolve(issuer)
        endpoint = issuer_chain.statements[0].endpoints.trust_mark_status
        if not endpoint:
            return "active"
        fetched = self.fetcher.post(endpoint, {"trust_mark": token})
        if fetched.status != 200:
            raise FederationError(UNREACHABLE, f"trust mark status: HTTP {fetched.status}")
        claims = jose.verify(
            fetched.body.strip(),
            issuer_chain.statements[0].jwks,
            trust_marks.STATUS_TYP,
            what="trust mark status",
            now=self.clock(),
        )
        if claims.get("trust_mark") != token:
            raise FederationError(BAD_SIGNATURE, "trust mark status is about another mark")
        return str(claims.get("status"))
