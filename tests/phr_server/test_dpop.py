"""DPoP at the PHR server (RFC 9449 7): a DPoP-bound token works only with the DPoP scheme and a
fresh proof from its key, for this method and URL, bound to this token, used once."""

from __future__ import annotations

import json

from phr_core.dpop import thumbprint
from tests.idp.test_dpop import Holder
from tests.phr_server.conftest import World
from tests.phr_server.test_access import FAMILY, _claims


def _bound(world: World, holder: Holder) -> str:
    claims = json.loads(_claims(world.user("sub-parent", codes=FAMILY)))
    base = {k: claims[k] for k in ("sub", "client_id", "scope", "grant_id")}
    return world.token({**base, "cnf": {"jkt": thumbprint(holder.public)}})


def _get(world: World, path: str, auth: str, proof: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": auth}
    if proof is not None:
        headers["DPoP"] = proof
    return world.client.get(path, headers=headers)


def test_bound_token_needs_its_proof(world: World, family: dict[str, str]) -> None:
    holder, thief = Holder(), Holder()
    token = _bound(world, holder)
    path = world.path(family["urn:uuid:o3"])
    url = world.settings.urls["fhir"].rstrip("/") + path

    ok = _get(world, path, f"DPoP {token}", holder.proof("GET", url, token))
    assert ok.status_code == 200, ok.get_data(as_text=True)

    def refused(resp, error: str = "invalid_dpop_proof") -> str:  # type: ignore[no-untyped-def]
        assert resp.status_code == 401
        assert resp.get_json()["resourceType"] == "OperationOutcome"
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge
        return resp.get_json()["issue"][0]["diagnostics"]

    # a stolen bound token is worthless as a bearer token, or without a proof
    assert "DPoP scheme" in refused(_get(world, path, f"Bearer {token}"), "invalid_token")
    assert "DPoP proof" in refused(_get(world, path, f"DPoP {token}"))
    # the thief's own key, another URL, another method, another token, a replay
    assert "another key" in refused(
        _get(world, path, f"DPoP {token}", thief.proof("GET", url, token))
    )
    assert "URL" in refused(
        _get(world, path, f"DPoP {token}", holder.proof("GET", url + "x", token))
    )
    assert "method" in refused(_get(world, path, f"DPoP {token}", holder.proof("POST", url, token)))
    other = _bound(world, holder)
    assert "access token" in refused(
        _get(world, path, f"DPoP {token}", holder.proof("GET", url, other))
    )
    used = holder.proof("GET", url, token)
    assert _get(world, path, f"DPoP {token}", used).status_code == 200
    assert "already used" in refused(_get(world, path, f"DPoP {token}", used))

    # an unbound token may not pretend to be bound
    plain = world.user("sub-parent", codes=FAMILY)
    assert _get(world, path, f"Bearer {plain}").status_code == 200
    refused(_get(world, path, f"DPoP {plain}", holder.proof("GET", url, plain)), "invalid_token")
