"""Alembic environment for `idp`; the shared logic is in phr_core.migrations."""

from idp.models import Base
from phr_core.migrations import run_env

run_env(Base.metadata)
