"""The broker: a sign-in at this IdP through the authentication app, mapped to our own person
(downstream apps keep receiving our pairwise subjects, never the upstream one).

    begin()   a card session row (purpose `authapp`, 5 minutes, single use) whose id is the
              OAuth `state`; `nonce` is its challenge; the PKCE verifier is derived from the
              state with a server key, so nothing secret sits in the browser.
    finish()  claim the session (single use) → Authlib token request and full ID token
              validation (client.py) → map the upstream subject to a person → verified.

The upstream subject is stored only as HMAC-SHA256(HKDF(PHR_IDP_DATA_KEY,
"idp/authapp-subject/v1"), issuer + "\\n" + sub), as an `idp_card_binding` row of type `app`.

First sign-in and renewed cards. An unknown subject cannot be mapped without the 基本4情報, and
they are asked for only then: the browser goes through the app once more with
`scope=openid name address birthdate gender` (purpose `authapp_enrol`). With them:
- exactly one enrolled person whose stored card attributes agree on all four (name and
  address compared width- and space-insensitively, birth date and sex exactly) → that person;
  the new subject is bound to them and their older app subjects are marked superseded
  (`app_renewal`);
- more than one → refused (`relink_ambiguous`: the counter sorts it out);
- none → a new person, attributes stored AES-GCM sealed as card enrolment does.

Why: we could not confirm from the published reference whether `sub` survives a card's
re-issue or the renewal of its 利用者証明用 certificate (client.py). If it survives, a renewed
card simply signs in; if it changes, the renewed card reaches the same person by the four
attributes the app proves. All four must agree, so a move (new address) is not re-linked
automatically (a person who moved and renewed on the same day goes to the counter).

Nothing is half-created: the person, binding and attributes are written in one transaction
after every upstream check passed; every outcome is audited (`idp_card_audit`, events
`app_sign_in`, `app_enrollment`, `app_renewal`), with no personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.card.authapp.client import AuthAppClient, UpstreamResult
from idp.card.authapp.errors import AppError
from idp.card.lookup import candidates, index_person, normalize
from idp.card.models import CardAttributes, CardBinding, CardSession
from idp.card.profile import BasicAttributes
from idp.card.services import CardServices
from idp.card.sessions import _audit, create_card_session
from idp.data_keys import DataKeys
from idp.models import Person
from phr_core.config import Settings
from phr_core.db import Database

PURPOSE_SIGN_IN = "authapp"
PURPOSE_ENROL = "authapp_enrol"
BINDING_TYPE = "app"
# A binding row needs a not_after; an upstream subject has none of its own.
SUBJECT_KEPT = timedelta(days=3650)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """`person_id` when signed in; `enrol` when the app must be asked for the 基本4情報."""

    person_id: str | None
    enrol: bool = False
    event: str = "app_sign_in"


class Broker:
    def __init__(self, settings: Settings, db: Database, client: AuthAppClient) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        keys = DataKeys(settings.secret("PHR_IDP_DATA_KEY"))
        # The same keys across data-key rotations (idp.data_keys): subjects are stored keyed,
        # and a sign-in begun on one worker finishes on another with the same verifier.
        self._subject_key = keys.identifier_key("idp/authapp-subject/v1")
        self._pkce_key = keys.identifier_key("idp/authapp-pkce/v1")
        # Only the attribute sealing of CardServices is used (no certificate verifier here).
        self._sealer = CardServices(settings, None, None)  # type: ignore[arg-type]  # sealing only

    def _data_key(self) -> str:
        return self.settings.secret("PHR_IDP_DATA_KEY")  # read now: it may have been rotated

    def subject_key(self, sub: str) -> str:
        message = f"{self.client.issuer}\n{sub}".encode()
        return hmac.new(self._subject_key, message, hashlib.sha256).hexdigest()

    def code_verifier(self, state: str) -> str:
        digest = hmac.new(self._pkce_key, state.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    # --- begin --------------------------------------------------------------------------------

    def begin(self, enrol: bool = False) -> tuple[str, str]:
        """A new single-use session: its state, and the upstream authorization URL for it."""
        with self.db.session() as s:
            row = create_card_session(s, PURPOSE_ENROL if enrol else PURPOSE_SIGN_IN)
            state, nonce = row.id, row.challenge
        try:
            url = self.client.authorization_url(state, nonce, self.code_verifier(state), enrol)
        except AppError as exc:
            self.fail(state, exc)
            raise
        return state, url

    # --- finish -------------------------------------------------------------------------------

    def fail(self, state: str | None, exc: AppError, event: str = "app_sign_in") -> None:
        """Record a failure (the session, if any, ends failed) and audit it."""
        with self.db.session() as s:
            if state:
                s.execute(
                    update(CardSession)
                    .where(
                        CardSession.id == state,
                        CardSession.status.in_(("pending", "processing")),
                        CardSession.purpose.in_((PURPOSE_SIGN_IN, PURPOSE_ENROL)),
                    )
                    .values(status="failed", error=exc.code)
                    .execution_options(synchronize_session=False)
                )
            _audit(s, event, "failure", exc.code, state)

    def _claim(self, state: str) -> CardSession:
        with self.db.session() as s:
            claimed = s.execute(
                update(CardSession)
                .where(
                    CardSession.id == state,
                    CardSession.status == "pending",
                    CardSession.purpose.in_((PURPOSE_SIGN_IN, PURPOSE_ENROL)),
                    CardSession.expires_at > _now(),
                )
                .values(status="processing")
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
                raise AppError("session_expired")
            row = s.get(CardSession, state)
            assert row is not None  # noqa: S101 - just claimed in this transaction
            s.expunge(row)
            return row

    def finish(self, state: str, code: str) -> Outcome:
        """Complete the upstream flow for `state` (already checked against the browser's own
        session) and map the result; AppError on any failure, already audited."""
        event = "app_sign_in"
        try:
            row = self._claim(state)
            enrol = row.purpose == PURPOSE_ENROL
            event = "app_enrollment" if enrol else event
            result = self.client.finish(code, self.code_verifier(state), row.challenge, enrol)
            with self.db.session() as s:
                outcome = self._map(s, state, result)
                _audit(s, outcome.event, "success", None, state, outcome.person_id)
                if outcome.enrol:
                    # Not a failure: the sign-in continues with the 基本4情報 asked for.
                    s.execute(
                        update(CardSession)
                        .where(CardSession.id == state)
                        .values(status="failed", error="enrollment_required")
                    )
                else:
                    s.execute(
                        update(CardSession)
                        .where(CardSession.id == state)
                        .values(
                            status="verified",
                            person_id=outcome.person_id,
                            enrolled=outcome.event == "app_enrollment",
                            verified_at=_now(),
                        )
                    )
            return outcome
        except AppError as exc:
            self.fail(state, exc, event)
            raise

    def _map(self, s: Session, state: str, result: UpstreamResult) -> Outcome:
        key = self.subject_key(result.subject)
        bound = s.scalar(
            select(CardBinding).where(
                CardBinding.cert_key == key,
                CardBinding.cert_type == BINDING_TYPE,
                CardBinding.status == "active",
            )
        )
        if bound is not None:
            return Outcome(bound.person_id)
        if result.attributes is None:
            return Outcome(None, enrol=True, event="app_sign_in")
        attrs = BasicAttributes(
            name=result.attributes["name"],
            birthdate=result.attributes["birthdate"],
            sex=result.attributes["gender"],
            address=result.attributes["address"],
        )
        matches = self._same_person(s, attrs)
        if len(matches) > 1:
            raise AppError("relink_ambiguous")
        now = _now()
        if matches:
            person_id, event = matches[0], "app_renewal"
            s.execute(
                update(CardBinding)
                .where(
                    CardBinding.person_id == person_id,
                    CardBinding.cert_type == BINDING_TYPE,
                    CardBinding.status == "active",
                )
                .values(status="superseded")
            )
            method = "app_relink"
        else:
            person_id, event, method = str(uuid.uuid4()), "app_enrollment", "app_enrollment"
            s.add(Person(id=person_id))
            s.flush()
            s.add(
                CardAttributes(
                    person_id=person_id,
                    sealed=self._sealer.seal_attributes(person_id, attrs),
                    updated_at=now,
                )
            )
            index_person(s, self._data_key(), person_id, attrs)
        s.add(
            CardBinding(
                person_id=person_id,
                cert_type=BINDING_TYPE,
                cert_key=key,
                not_after=now + SUBJECT_KEPT,
                status="active",
                binding_method=method,
                bound_at=now,
            )
        )
        s.flush()
        return Outcome(person_id, event=event)

    def _same_person(self, s: Session, attrs: BasicAttributes) -> list[str]:
        found = []
        for person_id in candidates(s, self._data_key(), attrs.name, attrs.birthdate):
            row = s.get(CardAttributes, person_id)
            if row is None:
                continue
            have = self._sealer.open_attributes(person_id, row.sealed)
            if (
                normalize(have.name) == normalize(attrs.name)
                and have.birthdate.strip() == attrs.birthdate.strip()
                and have.sex == attrs.sex
                and normalize(have.address) == normalize(attrs.address)
            ):
                found.append(person_id)
        return found
