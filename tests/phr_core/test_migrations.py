"""Migrations: every service upgrades from empty, matches its models, downgrades cleanly, and
all of them can share one database without touching each other's tables."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from phr_core import migrations
from phr_core.db import make_engine
from phr_core.services import SERVICES, ServiceSpec

SERVICE_IDS = [s.name for s in SERVICES]


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _model_tables(service: ServiceSpec) -> set[str]:
    models = importlib.import_module(f"{service.package}.models")
    return set(models.Base.metadata.tables)


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_upgrade_from_empty_then_downgrade_to_base(service: ServiceSpec, database_url: str) -> None:
    assert _tables(database_url) == set()
    migrations.upgrade(service, database_url)
    engine = make_engine(database_url)
    try:
        assert migrations.current_revision(service, engine) == migrations.head_revision(service)
    finally:
        engine.dispose()
    assert _model_tables(service) <= _tables(database_url)

    migrations.downgrade(service, database_url, "base")
    assert _tables(database_url) & _model_tables(service) == set()
    # and back up again: downgrade left nothing behind that blocks a new upgrade
    migrations.upgrade(service, database_url)
    assert _model_tables(service) <= _tables(database_url)


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_models_match_migrations(service: ServiceSpec, database_url: str) -> None:
    """Autogenerate finds nothing to add: the migrations create exactly what the models say."""
    migrations.upgrade(service, database_url)
    models = importlib.import_module(f"{service.package}.models")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": service.version_table}
            )
            diff = compare_metadata(ctx, models.Base.metadata)
    finally:
        engine.dispose()
    # Only this service's tables count: other tables in a shared database are not its business.
    own = _model_tables(service)
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name not in own)]
    assert diff == []


def test_services_share_one_database_independently(database_url: str) -> None:
    for s in SERVICES:
        migrations.upgrade(s, database_url)
    every = set().union(*(_model_tables(s) for s in SERVICES))
    versions = {s.version_table for s in SERVICES}
    assert every | versions <= _tables(database_url)

    fhir = next(s for s in SERVICES if s.name == "fhir")
    migrations.downgrade(fhir, database_url, "base")
    left = _tables(database_url)
    assert not (_model_tables(fhir) & left)
    for s in SERVICES:
        if s is not fhir:
            assert _model_tables(s) <= left
