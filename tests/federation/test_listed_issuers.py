"""federation.issuers: the OpenID providers a resource server accepts are the ones the anchor
lists, found in the background; a token's unverified issuer is only looked up. Made-up issuers,
however many and however varied, cost at most one listing of the anchor per NUDGE_S and never
a request to anything they name; a provider that joins is accepted within NUDGE_S; a removed
one is dropped at the next listing."""

from __future__ import annotations

import time

from federation import issuers as issuers_module
from federation.issuers import ListedIssuers
from tests.conftest import free_port
from tests.federation.conftest import Federation, LeafEntity, new_key


def provider(federation: Federation, *, listed_as: list[str] | None = None) -> str:
    """An OpenID provider publishing its configuration; vouched for by the anchor."""
    entity_id = f"http://127.0.0.1:{free_port()}"
    key = new_key()
    metadata = {"openid_provider": {"issuer": entity_id, "jwks": {"keys": []}}}
    entity = LeafEntity(entity_id, key, metadata, [federation.anchor_id])
    federation.fetcher.mount(entity_id, entity.app())
    federation.add_subordinate(
        federation.anchor,
        entity_id,
        entity.jwks,
        entity_types=["openid_provider"] if listed_as is None else listed_as,
    )
    return entity_id


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_made_up_issuers_cost_one_listing_per_interval_and_no_request_they_name(
    federation: Federation,
) -> None:
    known = provider(federation)
    clock = Clock()
    listed = ListedIssuers(federation.resolver(), clock=clock)
    assert listed.provider(known) is not None  # the first lookup waits for the first listing
    assert listed.settled()
    requests = federation.fetcher.requests

    mark = len(requests)
    for n in range(200):
        assert listed.provider(f"http://127.0.0.1:{free_port()}/junk-{n}") is None
        assert listed.provider(f"https://junk-{n}.example.jp") is None
    assert listed.settled()
    assert requests[mark:] == []  # just listed: within NUDGE_S no listing at all

    clock.now += issuers_module.NUDGE_S + 1
    mark = len(requests)
    for n in range(200):
        assert listed.provider(f"https://other-{n}.example.jp/x") is None
        assert listed.provider(f"http://127.0.0.1:{free_port()}/again-{n}") is None
    assert listed.settled()
    burst = requests[mark:]
    # One listing of the anchor (its list endpoints; the chains are cached), nothing else.
    assert burst and all(u.startswith(federation.anchor_id + "/list") for u in burst), burst
    assert len(burst) <= 2, burst
    assert listed.provider(known) is not None


def test_a_provider_that_joins_is_accepted_after_the_next_nudged_listing(
    federation: Federation,
) -> None:
    provider(federation)
    clock = Clock()
    listed = ListedIssuers(federation.resolver(), clock=clock)
    listed.refresh()
    newcomer = provider(federation)
    assert listed.provider(newcomer) is None  # not listed yet; just listed: no new listing
    assert listed.settled()
    assert listed.provider(newcomer) is None
    clock.now += issuers_module.NUDGE_S + 1
    assert listed.provider(newcomer) is None  # not listed yet; asks for a listing
    assert listed.settled()
    assert listed.provider(newcomer) is not None


def test_a_removed_provider_is_dropped_at_the_next_listing(federation: Federation) -> None:
    leaving = provider(federation)
    clock = Clock()
    listed = ListedIssuers(federation.resolver(), clock=clock)
    listed.refresh()
    assert listed.provider(leaving) is not None
    federation.remove_subordinate(federation.anchor, leaving)
    clock.now += issuers_module.REFRESH_S + 1
    listed.provider(leaving)  # due: the refresh starts in the background
    assert listed.settled()
    assert listed.provider(leaving) is None


def test_only_providers_listed_as_openid_providers_count(federation: Federation) -> None:
    """The anchor's listing by entity type decides: an entity vouched for as something else
    (here an app) is not taken for an OpenID provider, even if its metadata says it is one."""
    other = provider(federation, listed_as=["openid_relying_party"])
    listed = ListedIssuers(federation.resolver())
    listed.refresh()
    assert listed.provider(other) is None
    assert listed.settled()
