"""Alembic environment for `connectors`; the shared logic is in phr_core.migrations."""

from connectors.models import Base
from phr_core.migrations import run_env

run_env(Base.metadata)
