"""phr_core.outbound: what a service may fetch (addresses checked after DNS, production against
development), and the bounds every fetch runs within (no redirects, size cap, deadline, a
silent address remembered whatever the URL, a process-wide concurrency limit)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from phr_core import outbound
from phr_core.config import load_settings
from phr_core.outbound import AddressPolicy, AddressRefused, Busy, Outbound, TooLarge, Unreachable
from tests.listener import listening

INTERNAL = [
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "[::1]",
    "[fd00::1]",
    "192.168.1.10",
    "172.16.0.1",
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "224.0.0.1",
    "[::ffff:127.0.0.1]",  # IPv4-mapped loopback
    "[fe80::1]",
    "[fd00:ec2::254]",
    "localhost",  # a name that resolves to loopback (through the real resolver)
]


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    outbound.forget_unreachable()
    yield
    outbound.forget_unreachable()


@pytest.mark.parametrize("host", INTERNAL)
def test_production_refuses_internal_addresses(host: str) -> None:
    policy = AddressPolicy(production=True)
    with pytest.raises(AddressRefused):
        policy.addresses(f"https://{host}:8443/.well-known/openid-federation")


@pytest.mark.parametrize("host", INTERNAL)
def test_a_configured_origin_is_reachable_wherever_it_resolves(host: str) -> None:
    origin = f"http://{host}:8443"
    for production in (True, False):
        policy = AddressPolicy(production, outbound.configured_origins([origin]))
        assert policy.addresses(origin + "/jwks"), (production, host)
        # … and only that origin: another port on the same host is not configured.
        if production:
            with pytest.raises(AddressRefused):
                policy.addresses(f"https://{host}:9443/jwks")


@pytest.mark.parametrize(
    "host", ["10.1.2.3", "169.254.169.254", "[fd00::1]", "100.64.0.1", "192.168.1.10"]
)
def test_development_still_refuses_private_and_metadata_addresses(host: str) -> None:
    with pytest.raises(AddressRefused):
        AddressPolicy(production=False).addresses(f"https://{host}/x")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://[::1]:9/x", "http://localhost:9/"])
def test_development_reaches_loopback(url: str) -> None:
    assert AddressPolicy(production=False).addresses(url)


def test_production_wants_https_and_a_public_address() -> None:
    policy = AddressPolicy(production=True)
    assert [str(ip) for ip in policy.addresses("https://93.184.216.34/")] == ["93.184.216.34"]
    with pytest.raises(AddressRefused, match="http"):
        policy.addresses("http://93.184.216.34/")
    for bad in ("ftp://93.184.216.34/", "https://user:pw@93.184.216.34/", "/relative"):
        with pytest.raises(AddressRefused):
            policy.addresses(bad)


def test_settings_decide_production_and_the_configured_origins() -> None:
    prod = outbound.for_settings(
        load_settings({"PHR_ENV": "production", "PHR_ISSUER": "http://10.0.0.5:8001"})
    )
    assert prod.policy.production
    assert prod.policy.addresses("http://10.0.0.5:8001/jwks")  # the configured IdP
    with pytest.raises(AddressRefused):
        prod.policy.addresses("http://10.0.0.6:8001/jwks")
    dev = outbound.for_settings(load_settings({}))
    assert not dev.policy.production


def test_a_refused_address_receives_nothing() -> None:
    with listening() as witness:
        with pytest.raises(AddressRefused):
            Outbound(AddressPolicy(production=True)).get(witness.url + "/x")
        with pytest.raises(AddressRefused):
            Outbound(AddressPolicy(production=True)).get(
                witness.url.replace("127.0.0.1", "localhost") + "/x"
            )
        assert witness.connections == 0


def test_development_fetches_a_name_at_the_checked_address() -> None:
    with listening(body=b'{"ok": true}') as server:
        url = f"http://localhost:{server.port}/jwks?x=1"
        resp = Outbound(AddressPolicy(production=False)).get(url)
        assert (resp.status, resp.content_type, resp.body) == (
            200,
            "application/json",
            b'{"ok": true}',
        )
        assert server.requests == [f"GET /jwks?x=1 HTTP/1.1 | Host: localhost:{server.port}"]


def test_redirects_are_not_followed() -> None:
    with listening() as target, listening(mode="redirect") as hop:
        hop.location = target.url + "/secret"
        resp = Outbound(AddressPolicy(production=False)).get(hop.url + "/start")
        assert resp.status == 302 and resp.location == target.url + "/secret"
        assert target.connections == 0


def test_an_answer_larger_than_the_cap_is_refused() -> None:
    with listening(mode="big", size=70_000) as server:
        fetch = Outbound(AddressPolicy(production=False))
        with pytest.raises(TooLarge):
            fetch.get(server.url, max_body=65_536)
        assert len(fetch.get(server.url, max_body=80_000).body) == 70_000


def test_a_silent_address_is_given_up_on_and_remembered_whatever_the_url() -> None:
    with listening(mode="silent") as silent:
        fetch = Outbound(AddressPolicy(production=False), deadline=0.2)
        t0 = time.monotonic()
        with pytest.raises(Unreachable, match="no answer in time"):
            fetch.get(silent.url + "/a")
        # This fetcher's deadline, not the default one: the only bound on wall time here, set
        # where it tells them apart with seconds to spare on a loaded machine.
        assert time.monotonic() - t0 < outbound.DEADLINE_S
        for path in ("/b", "/c?varied=1", "/d/.well-known/openid-federation"):
            with pytest.raises(Unreachable, match="recently"):
                fetch.get(silent.url + path)
        assert silent.connections == 1


def test_a_configured_origin_is_not_remembered_as_silent() -> None:
    with listening(mode="silent") as silent:
        policy = AddressPolicy(False, outbound.configured_origins([silent.url]))
        fetch = Outbound(policy, deadline=0.3)
        for _ in range(2):
            with pytest.raises(Unreachable):
                fetch.get(silent.url + "/jwks")
        assert silent.connections == 2  # the operator's own service is always tried again


def _hanging(fetch: Outbound, urls: list[str], errors: list[Exception]) -> list[threading.Thread]:
    """Fetches of `urls` that hang until the silent listener hangs up (their deadline is far
    off), each in a thread; their errors are collected."""

    def hang(url: str) -> None:
        try:
            fetch.get(url)
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=hang, args=(url,)) for url in urls]
    for t in threads:
        t.start()
    return threads


def _wait_for(condition: Callable[[], bool]) -> None:
    """Until `condition` holds (the listener holds the fetches' connections), however long
    that takes on a loaded machine (30 s is only a backstop)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the fetches never connected"
        time.sleep(0.02)


HANG_S = 30.0  # the hanging fetches' deadline: the listener hangs up on them long before


def test_the_process_runs_a_bounded_number_of_fetches_at_once() -> None:
    """With every slot taken by fetches that hang, one more is refused (Busy) after its slot
    wait, while those fetches still hang: it is not queued behind them. Nothing is timed: the
    hanging fetches end only when the listener hangs up, after the refusal."""
    with listening(mode="silent") as silent:
        fetch = Outbound(
            AddressPolicy(False, outbound.configured_origins([silent.url])), deadline=HANG_S
        )
        errors: list[Exception] = []
        urls = [silent.url + "/slow"] * outbound.MAX_CONCURRENT
        threads = _hanging(fetch, urls, errors)
        _wait_for(lambda: len(silent._held) == outbound.MAX_CONCURRENT)
        with pytest.raises(Busy, match="too many outbound requests"):
            fetch.get(silent.url + "/one-more")
        assert all(t.is_alive() for t in threads) and not errors  # refused while they hang
        assert silent.connections == outbound.MAX_CONCURRENT
        silent.close()  # hang up: the hanging fetches end
        for t in threads:
            t.join(HANG_S)
        assert len(errors) == outbound.MAX_CONCURRENT
        assert all(isinstance(e, Unreachable) for e in errors)


def test_one_silent_address_cannot_take_every_slot() -> None:
    """PER_ADDRESS fetches hang on one address: one more to it is refused at once (Busy, one
    address), while they still hang, though slots are free for other addresses."""
    with listening(mode="silent") as silent:
        fetch = Outbound(AddressPolicy(production=False), deadline=HANG_S)
        errors: list[Exception] = []
        urls = [f"{silent.url}/slow-{n}" for n in range(outbound.PER_ADDRESS)]
        threads = _hanging(fetch, urls, errors)
        _wait_for(lambda: len(silent._held) == outbound.PER_ADDRESS)
        with pytest.raises(Busy, match="one address"):
            fetch.get(silent.url + "/one-more")
        assert all(t.is_alive() for t in threads) and not errors  # refused while they hang
        silent.close()
        for t in threads:
            t.join(HANG_S)
        assert silent.connections == outbound.PER_ADDRESS
        assert len(errors) == outbound.PER_ADDRESS
