"""Recording a person's approval of an app's scopes, so they are not asked again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from idp.clients import ClientView
from idp.context import IdP
from idp.models import Grant
from idp.tokens import new_handle, now_utc

GRANT_LIFETIME = timedelta(days=365)


def record_grant(
    ctx: IdP, s: Session, person_id: str, client: ClientView, scope: list[str]
) -> Grant:
    grant = Grant(
        id=new_handle(16),
        person_id=person_id,
        client_id=client.client_id,
        scope=" ".join(scope),
        expires_at=now_utc() + GRANT_LIFETIME,
    )
    s.add(grant)
    return grant
