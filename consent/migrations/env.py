"""Alembic environment for `consent`; the shared logic is in phr_core.migrations."""

from consent.models import Base
from phr_core.migrations import run_env

run_env(Base.metadata)
