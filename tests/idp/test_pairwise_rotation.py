"""`phr idp rotate-pairwise-key` (issue 20): a new pairwise key serves only sectors registered
after it; a person's `sub` and pairwise-id key at every existing app stay as they were, in the
running IdP (its live sign-in session) and in one started after the rotation."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Person, Sector
from idp.subjects import PairwiseSubjects, sector_of_redirect_uris
from launcher.cli import main
from phr_core.config import Settings
from tests.idp.conftest import OTHER_REDIRECT, REDIRECT, Browser
from tests.idp.test_pairwise_and_grants import _claims, _flow


def _rotate(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in settings.environ.items():
        monkeypatch.setenv(k, v)
    out = CliRunner().invoke(main, ["idp", "rotate-pairwise-key"])
    assert out.exit_code == 0, out.output
    return out.output


def test_existing_subjects_stay_new_sectors_use_the_new_key(
    idp_app: Flask, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = idp_app.extensions["phr_settings"]
    db = idp_app.extensions["phr_db"]
    a = register("app-a")
    person = Browser(idp_app.test_client(), person=1)
    sub_a = _claims(_flow(idp_app, a, person)["id_token"])["sub"]
    sector_a = sector_of_redirect_uris([REDIRECT])
    with db.session() as s:
        id_key_a = idp_app.extensions["idp"].subjects.id_key(s, sector_a)
        old_key_id = s.get(Sector, sector_a).key_id

    said = _rotate(settings, monkeypatch)
    assert "new sectors now use pairwise key 2" in said
    assert settings.secret("PHR_PAIRWISE_KEY").startswith("2:")

    # The running IdP, the same browser session: the person's sub at app A is unchanged.
    assert _claims(_flow(idp_app, a, person)["id_token"])["sub"] == sub_a
    # An app of a sector first seen after the rotation gets the new key ...
    b = register("app-b", redirect_uris=[OTHER_REDIRECT])
    sub_b = _claims(_flow(idp_app, b, person)["id_token"])["sub"]
    with db.session() as s:
        assert s.get(Sector, sector_a).key_id == old_key_id == "1"
        assert s.get(Sector, sector_of_redirect_uris([OTHER_REDIRECT])).key_id == "2"
        # ... and an IdP started after the rotation agrees on both sectors.
        restarted = PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY"))
        person_id = _person_id(s, sector_a, sub_a, restarted)
        assert restarted.subject(s, sector_a, person_id) == sub_a
        assert restarted.id_key(s, sector_a) == id_key_a
        assert restarted.subject(s, sector_of_redirect_uris([OTHER_REDIRECT]), person_id) == sub_b
    # The old key alone no longer makes app B's subject: it really is under the new key.
    with db.session() as s:
        only_old = PairwiseSubjects(settings.secret("PHR_PAIRWISE_KEY").split()[-1])
        with pytest.raises(Exception, match="missing from PHR_PAIRWISE_KEY"):
            only_old.subject(s, sector_of_redirect_uris([OTHER_REDIRECT]), person_id)


def _person_id(s: Session, sector: str, sub: str, subjects: PairwiseSubjects) -> str:
    """The IdP's internal id of the person whose sub at `sector` is `sub`."""
    for person in s.scalars(select(Person)):
        if subjects.subject(s, sector, person.id) == sub:
            return person.id
    raise AssertionError("no person has that subject")
