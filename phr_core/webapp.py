"""What every service's Flask app factory shares: settings, database, health checks, metrics,
logs (with request ids) and security headers. Each service's `create_app` calls `build_app`
and adds its own blueprints."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from phr_core import favicon, logs, metrics, migrations, request_limits
from phr_core.config import Settings, load_settings
from phr_core.db import Database
from phr_core.health import bp as health_bp
from phr_core.services import get_service

RENDER_ERROR = "phr_render_error"


def build_app(
    service_name: str,
    settings: Settings | None,
    blueprints: Iterable[Blueprint],
    *,
    render_error: Callable[[HTTPException], Response] | None = None,
) -> Flask:
    """A Flask app for one service, refusing bad production configuration up front."""
    service = get_service(service_name)
    settings = settings or load_settings()
    settings.require_production_ready((service,))
    logs.configure(settings.log_level, settings.log_format, service.name)

    app = Flask(service.package)
    app.config.update(
        JSON_AS_ASCII=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        # Cookies ignore ports: on one host the services' sessions must not share a name.
        SESSION_COOKIE_NAME=f"phr_{service.name}_session",
    )
    if service.session_key:
        app.config["SECRET_KEY"] = settings.secret(service.session_key)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Flask's default provider's
    app.extensions["phr_settings"] = settings
    app.extensions["phr_service"] = service
    app.extensions["phr_schema_head"] = migrations.head_revision(service)
    app.extensions["phr_db"] = Database(settings.database_urls[service.name])
    metrics.watch_pool(app.extensions["phr_db"].engine, service.name)
    metrics.install(app, settings)  # first, so that it times the other hooks too
    logs.install(app)  # the request id, before any hook that may refuse the request
    request_limits.install(app, settings)  # body, URL and JSON nesting: before any view
    app.register_blueprint(health_bp)
    app.register_blueprint(favicon.bp)
    for bp in blueprints:
        app.register_blueprint(bp)
    app.after_request(_security_headers)
    renderer = render_error or json_error
    app.extensions[RENDER_ERROR] = renderer  # for refusals before the app (gunicorn_workers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return renderer(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Log the type and place only: messages may carry personal data or tokens.
        app.logger.error("unhandled %s", type(exc).__name__, exc_info=settings.log_level == "DEBUG")
        return renderer(InternalServerError())

    return app


def json_error(exc: HTTPException) -> Response:
    """Errors as small JSON documents in the OAuth shape (`error`, `error_description`)."""
    code = exc.code or 500
    name = (exc.name or "error").lower().replace(" ", "_")
    resp = jsonify(error=name, error_description=exc.description)
    resp.status_code = code
    return resp


def _security_headers(resp: Response) -> Response:
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    return resp


def database() -> Database:
    """The current app's database."""
    return current_app.extensions["phr_db"]


def settings() -> Settings:
    """The current app's settings."""
    return current_app.extensions["phr_settings"]
