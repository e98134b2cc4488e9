"""Fixtures of the launcher tests: the replica platform (started only by the tests that ask
for it, once per module)."""

from tests.launcher.replica_platform import replicas  # noqa: F401 (a fixture)
