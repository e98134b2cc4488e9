"""Revoking an app grant checks ownership in one place (consent.records.revoke_grant), for the
portal's button and the consent API alike: only the grant's owner revokes it, a stranger and a
city consent (not an app grant) get the same "no such grant"."""

from __future__ import annotations

from flask import Flask

from consent import records
from phr_core.webapp import database

OWNER = "phr-sub-owner"


def _grant(kind: str = records.RECIPIENT) -> str:
    with database().session() as s:
        view = records.create(
            s,
            kind=kind,
            subject=OWNER,
            actor="some-app",
            actor_name="Some app",
            categories=["vaccination"],
            purpose="test",
            recorded_by="test",
            scopes=["patient/Immunization.rs"],
        )
        return view.id


def _status(grant_id: str) -> str:
    with database().session() as s:
        view = records.get(s, grant_id)
        assert view is not None
        return view.version.status


def test_only_the_owner_revokes_an_app_grant(consent_app: Flask) -> None:
    with consent_app.app_context():
        gid, city = _grant(), _grant(records.PROVIDER)
        for grant_id, owns in (
            (gid, lambda sub: sub == "someone-else"),  # not theirs
            (city, lambda sub: sub == OWNER),  # theirs, but a city consent, not an app grant
            ("no-such-grant", lambda sub: True),
        ):
            with database().session() as s:
                assert records.revoke_grant(s, grant_id, owns, recorded_by="t") is None
        assert _status(gid) == records.ACTIVE and _status(city) == records.ACTIVE
        with database().session() as s:
            done = records.revoke_grant(s, gid, lambda sub: sub == OWNER, recorded_by="t")
            assert done is not None and done.version.status != records.ACTIVE
        assert _status(gid) != records.ACTIVE
