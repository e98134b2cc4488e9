"""Flask app factory of the IdP (`gunicorn 'idp.app:create_app()'`)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.orm import Session

from federation import publish
from federation.entity.trust_chain import TrustChain
from idp import clients, federation, housekeeping, keys, limits
from idp.card import views as card_views
from idp.card.authapp import views as authapp_views
from idp.card.verifier_config import verifier_choice
from idp.context import IdP
from idp.endpoints import (
    authorize,
    discovery,
    interaction,
    logout,
    par,
    person_erase,
    registration,
    resource_tokens,
    token,
)
from idp.grants import grant_store
from idp.keys import KeyRing
from idp.passkey import staff_views as passkey_staff_views
from idp.passkey import views as passkey_views
from idp.sealing import RecipientKeys
from idp.subjects import PairwiseSubjects
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from phr_core.sealing import sender_secrets
from phr_core.tokens import access_token_ciphers
from phr_core.webapp import build_app, settings

bp = Blueprint("idp_index", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return jsonify(
        service="idp",
        issuer=settings().issuer,
        discovery=settings().issuer + "/.well-known/openid-configuration",
    )


def prepare(settings: Settings) -> None:
    """One-time start-up work, done once before the workers start: signing keys exist, static
    clients from PHR_IDP_CLIENTS_FILE are registered."""
    db = Database(settings.database_urls["idp"])
    try:
        with db.session() as s:
            _one_starter_at_a_time(s)
            keys.ensure_keys(s, settings.secret("PHR_IDP_DATA_KEY"))
            path = settings.option("PHR_IDP_CLIENTS_FILE")
            if path:
                clients.load_clients_file(s, Path(path), production=settings.production)
    finally:
        db.dispose()


PREPARE_LOCK = 0x1D9_0001  # any constant of ours: the advisory lock of `prepare`


def _one_starter_at_a_time(s: Session) -> None:
    """Replicas that start at once (`docker compose up --scale idp=2`) would each find no
    signing keys and each make a `current` one: on PostgreSQL they take turns, until commit."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PREPARE_LOCK})


def _resolve_in(app: Flask, settings: Settings, entity_id: str) -> TrustChain:
    """A resource server's trust chain, with the IdP's own resolver (tests may put theirs)."""
    with app.app_context():
        return federation.resolver(settings).resolve(entity_id)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    blueprints = [
        bp,
        discovery.bp,
        authorize.bp,
        interaction.bp,
        par.bp,
        token.bp,
        resource_tokens.bp,
        logout.bp,
        person_erase.bp,
        registration.bp,
        card_views.bp,
        authapp_views.bp,
        passkey_views.bp,
        passkey_staff_views.bp,
        publish.blueprint("idp"),
    ]
    app = build_app("idp", settings, blueprints)  # refuses production problems first
    # PHR_IDP_SECRET_KEY may hold several secrets, newest first (`phr idp rotate-session-key`):
    # the newest signs session cookies, the older ones still open the cookies they signed.
    newest, *older = app.config["SECRET_KEY"].split()
    app.config.update(SECRET_KEY=newest, SECRET_KEY_FALLBACKS=older)
    verifier_choice(settings)  # PHR_CARD_VERIFIER: refuse a stand-in in production at start
    db = app.extensions["phr_db"]
    purger = housekeeping.Purger(db)

    @app.teardown_request
    def _housekeeping(_exc: BaseException | None) -> None:
        purger.maybe_purge()

    # PHR_ACCESS_TOKEN_KEY, newest first (`phr idp rotate-access-token-key`): read at start.
    shared = access_token_ciphers(settings.secret("PHR_ACCESS_TOKEN_KEY"))
    senders = sender_secrets(settings.secret("PHR_ACCESS_TOKEN_KEY"))
    app.extensions["idp"] = IdP(
        settings=settings,
        db=db,
        keys=KeyRing(db, lambda: settings.secret("PHR_IDP_DATA_KEY")),
        subjects=PairwiseSubjects(
            settings.secret("PHR_PAIRWISE_KEY"), lambda: settings.secret("PHR_PAIRWISE_KEY")
        ),
        access_token_key=shared[0],
        older_access_token_keys=shared[1:],
        grants=grant_store(settings.option("PHR_IDP_GRANT_STORE")),
        recipients=RecipientKeys(lambda entity_id: _resolve_in(app, settings, entity_id)),
        sealing_secret=senders[0],
        older_sealing_secrets=senders[1:],
        trusted_proxies=limits.parse_proxies(settings.option("PHR_IDP_TRUSTED_PROXIES")),
    )
    return app
