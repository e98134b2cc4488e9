"""The IdP's long-lived parts, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from flask import current_app
from joserfc.jwk import OctKey
from sqlalchemy.orm import Session

from idp.clients import ClientView
from idp.keys import KeyRing
from idp.models import Grant
from idp.patient_choice import PatientChoice
from idp.sealing import RecipientKeys
from idp.subjects import PairwiseSubjects
from phr_core.config import Settings
from phr_core.db import Database

CODE_TTL = timedelta(seconds=120)
ACCESS_TOKEN_TTL = timedelta(minutes=5)
ID_TOKEN_TTL = timedelta(minutes=5)
REFRESH_TOKEN_TTL = timedelta(days=30)
AUTH_REQUEST_TTL = timedelta(minutes=10)
PAR_TTL = timedelta(seconds=90)
LOGIN_SESSION_TTL = timedelta(hours=8)

# Levels of assurance, weakest first. A client or scope may demand a minimum.
ACR_DEV = "urn:phr:acr:dev"  # development sign-in, never in production
ACR_PASSKEY = "urn:phr:acr:passkey"  # passkey enrolled after an in-person check
ACR_CARD = "urn:phr:acr:card"  # My Number card (JPKI) with PIN
ACR_ORDER = (ACR_DEV, ACR_PASSKEY, ACR_CARD)


def acr_satisfies(have: str, need: str | None) -> bool:
    if not need:
        return True
    if have not in ACR_ORDER or need not in ACR_ORDER:
        return have == need
    return ACR_ORDER.index(have) >= ACR_ORDER.index(need)


class GrantStore(Protocol):
    """Where approvals are recorded (idp.grants: the consent service, or the IdP alone). Declared
    here, beside the context that holds one and is passed to it."""

    # True when its answers come over the network: no database write lock may be held then.
    calls_out: bool

    def record(
        self,
        ctx: IdP,
        s: Session,
        person_id: str,
        client: ClientView,
        scope: list[str],
        lang: str,
        patient: str | None = None,
        details: dict[str, object] | None = None,
    ) -> Grant: ...

    def is_active(self, ctx: IdP, s: Session, grant: Grant) -> bool: ...

    def patients(self, ctx: IdP, s: Session, person_id: str) -> list[PatientChoice]: ...


@dataclass
class IdP:
    settings: Settings
    db: Database
    keys: KeyRing
    subjects: PairwiseSubjects
    access_token_key: OctKey  # seals access tokens for resource servers (phr_core.tokens)
    grants: GrantStore
    # Resource servers' own encryption keys, from the federation (idp.sealing.RecipientKeys;
    # None: every token under access_token_key), and the secret its CEKs are derived from.
    recipients: RecipientKeys | None = None
    sealing_secret: bytes = b""
    # During a rotation of PHR_ACCESS_TOKEN_KEY: the older keys and secrets, which still open
    # the tokens this IdP sealed with them (introspection, revocation, userinfo).
    older_access_token_keys: tuple[OctKey, ...] = ()
    older_sealing_secrets: tuple[bytes, ...] = ()
    # Reverse proxies whose X-Forwarded-For is believed (PHR_IDP_TRUSTED_PROXIES, idp.limits).
    trusted_proxies: tuple = ()

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def endpoint(self, path: str) -> str:
        return self.issuer + path

    def audience(self, kind: str) -> str:
        return self.settings.urls[kind]


def idp() -> IdP:
    return current_app.extensions["idp"]
