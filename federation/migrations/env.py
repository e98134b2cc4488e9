"""Alembic environment for `federation`; the shared logic is in phr_core.migrations."""

from federation.models import Base
from phr_core.migrations import run_env

run_env(Base.metadata)
