"""A pseudonym-key rotation as the PHR server sees it (issue 20), on both databases: the city
loads its vaccination export, rotates its key with `phr connector rotate-pseudonym-key
--register` (the pass that records every resident of the register under the new key), then
loads its maternal and child health and claims exports. Each resident's records from before and
after the rotation are one Patient: the same pseudonymous code, so the same derived Patient id
(phr_core.identifiers.patient_id), the one the consent service's link names. No Patient is made
under a new-key code for a resident the register held."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from connectors import pseudonym_keys
from connectors.http import TokenSource
from connectors.pipeline import Connector, Report
from connectors.pseudonym import Pseudonymizer
from connectors.register import read
from connectors.transport import FhirTransport
from launcher.cli import main
from phr_core.config import Settings
from phr_core.db import Database
from phr_core.identifiers import patient_id, pseudonym_system
from tests.browser import live_server
from tests.connectors.helpers import CITY, KEY, consents, make_city
from tests.connectors.test_phr_server_e2e import CLIENT, SECRET, environ, idp

__all__ = ["environ", "idp"]  # the fixtures, shared with the end-to-end test


def _patients_by_code(app: Flask) -> dict[str, str]:
    """pseudonymous code → Patient id, of every Patient the PHR server holds (its index)."""
    from phr_server.models import TokenIndex

    with app.extensions["phr_db"].session() as s:
        rows = s.execute(
            select(TokenIndex.code, TokenIndex.resource_id).where(
                TokenIndex.resource_type == "Patient",
                TokenIndex.param == "identifier",
                TokenIndex.system == pseudonym_system(CITY),
            )
        )
        return {code: pid for code, pid in rows}


def _compartments(app: Flask) -> dict[str, set[str]]:
    """Patient id → the types of the resources in its compartment (what the policy joins)."""
    from phr_server.models import Compartment

    out: dict[str, set[str]] = {}
    with app.extensions["phr_db"].session() as s:
        for pid, rtype in s.execute(select(Compartment.patient_id, Compartment.resource_type)):
            out.setdefault(pid, set()).add(rtype)
    return out


def test_records_before_and_after_a_rotation_are_one_patient(
    app_factory: Callable[[str], Flask],
    migrated: Settings,
    idp: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("phr_server.transaction")
    from phr_server.policy import InMemoryConsentDirectory

    migrated.secrets_dir.mkdir(parents=True, exist_ok=True)
    (migrated.secrets_dir / "PHR_CONNECTOR_PSEUDONYM_KEY").write_text(KEY + "\n", "utf-8")
    for k, v in migrated.environ.items():
        monkeypatch.setenv(k, v)
    idp["aud"] = migrated.urls["fhir"]
    app = app_factory("fhir")
    app.extensions["phr_consent"] = InMemoryConsentDirectory()
    files = make_city(tmp_path / "inbox", n=120, months=1, share=0.6)
    register = Path(files["register"])

    def load(url: str, pseudo: Pseudonymizer, *sources: str) -> None:
        c = Connector(
            CITY,
            pseudo,
            consents(files["consents"]),
            FhirTransport(url, TokenSource(idp["iss"], CLIENT, SECRET)),
            register_path=register,
            report=Report(io.StringIO()),
        )
        for source in sources:
            paths = files[source] if isinstance(files[source], list) else [files[source]]
            for path in paths:
                assert c.run_file(Path(path)).rejected == 0

    def city_pseudonymizer() -> Pseudonymizer:
        db = Database(migrated.database_urls["connector"])
        try:
            return pseudonym_keys.pseudonymizer(migrated, db)
        finally:
            db.dispose()

    with live_server(app) as url:
        load(url, city_pseudonymizer(), "vaccination")
        before = _patients_by_code(app)
        assert before
        out = CliRunner().invoke(
            main, ["connector", "rotate-pseudonym-key", "--register", str(register)]
        )
        assert out.exit_code == 0, out.output
        new_key = migrated.secret("PHR_CONNECTOR_PSEUDONYM_KEY").split()[0]
        assert new_key != KEY
        load(url, city_pseudonymizer(), "mch", "claims")
    after = _patients_by_code(app)

    old_codes = {Pseudonymizer(KEY).code(r.number) for r in read(register)}
    new_codes = {Pseudonymizer(new_key).code(r.number) for r in read(register)}
    assert set(after) <= old_codes and not set(after) & new_codes  # nobody re-coded
    assert all(after[code] == pid for code, pid in before.items())  # the same Patients
    assert all(pid == patient_id(CITY, code) for code, pid in after.items())
    # Residents with records from both sides of the rotation: one Patient carries them all.
    compartments = _compartments(app)
    vaccinated = {pid for pid in before.values() if "Immunization" in compartments.get(pid, ())}
    later = {"Encounter", "Observation", "ExplanationOfBenefit", "Claim"}
    both = [pid for pid in vaccinated if compartments[pid] & later]
    assert both, compartments
