"""Stepdown: consented step-down journeys between NHS trusts and VCSE community offers."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import IntegrityError
from werkzeug.routing import IntegerConverter

from service import clock, db, errors, observability
from service.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)
csrf = CSRFProtect()


class _RecordIdConverter(IntegerConverter):
    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(config_override: dict[str, Any] | None = None) -> Flask:
    """Build the application; nothing connects or starts at import time."""
    settings = load_settings(override=config_override)
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    # Ids beyond a 32-bit key cannot name a record: answer 404 at routing, not a database error.
    app.url_map.converters["int"] = _RecordIdConverter
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.SECRET_KEY,
        SESSION_COOKIE_NAME="stepdown_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.SESSION_ABSOLUTE_HOURS),
        WTF_CSRF_ENABLED=settings.WTF_CSRF_ENABLED,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        API_TITLE="Stepdown API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "stepdown_session"},
                }
            },
            "security": [{"bearer": []}, {"session": []}],
        },
        TEMPLATES_AUTO_RELOAD=not settings.is_production,
    )
    if settings.PROXY_FIX_HOPS:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.PROXY_FIX_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    observability.configure_logging(settings.LOG_LEVEL)
    observability.init_app(app)
    db.init_app(app, settings)
    clock.init_app(app, settings.extra.get("clock"))

    from service.auth import access, tokens

    tokens.init_app(app, settings)
    csrf.init_app(app)
    from service import ratelimit

    ratelimit.init_app(app, settings)  # before the access gate: floods stop before any work
    access.init_app(app)
    from service import input_guard

    input_guard.init_app(app)  # after the gate: an anonymous caller is told to sign in first

    api = Api(app)
    app.extensions["stepdown.api"] = api
    _register_areas(app, api)
    errors.init_app(app)  # after Api: flask-smorest's JSON handler must not serve pages
    _install_commit(app)
    _install_security_headers(app, settings)
    _install_template_globals(app)

    from service import cli

    cli.init_app(app)
    return app


# Each area module exposes register(app, api). Add a line here for a new area.
AREAS = (
    "service.health",
    "service.auth.views",
    "service.pages.views",
    "service.pages.people",
    "service.pages.coordinator",
    "service.pages.vcse",
    "service.pages.duty",
    "service.admin.api",
    "service.offers.api",
    "service.people.api",
    "service.journeys.api",
    "service.referrals.api",
    "service.audit.api",
    "service.metrics",
    "service.reports.handover",
    "service.flags.api",
    "service.interop",
    "service.flows.api",
    "service.flows.views",
)


def _register_areas(app: Flask, api: Api) -> None:
    import importlib

    for name in AREAS:
        importlib.import_module(name).register(app, api)


def _install_commit(app: Flask) -> None:
    @app.after_request
    def _commit_once(response):
        # One commit per request, only for a successful response; errors roll back.
        if response.status_code < 400 and "db_session" in g:
            try:
                db.commit_request_session()
            except IntegrityError:
                log.info("commit refused by a database constraint")
                return errors.handle_stepdown_error(errors.constraint_conflict())
            except errors.DATABASE_UNAVAILABLE:
                log.warning("commit failed: database unavailable")
                return errors.handle_stepdown_error(errors.database_unavailable())
        return response


def _install_security_headers(app: Flask, settings) -> None:
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
        "object-src 'none'"
    )

    @app.after_request
    def _headers(response):
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
        if settings.is_production:
            response.headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        return response


def _install_template_globals(app: Flask) -> None:
    from service.pages.context import inject_page_context

    app.context_processor(inject_page_context)
