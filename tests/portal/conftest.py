"""The portal's tests run on the consent service's fixtures (the portal serves its port and
reads its records): the same migrated database, token issuer and app."""

from tests.consent.conftest import *  # noqa: F403
