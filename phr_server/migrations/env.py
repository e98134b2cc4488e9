"""Alembic environment for `phr_server`; the shared logic is in phr_core.migrations."""

from phr_core.migrations import run_env
from phr_server.models import Base

run_env(Base.metadata)
