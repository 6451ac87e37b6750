"""Deny by default: every route declares who may call it, checked before the view runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, redirect, request, url_for

from service.auth import sessions, tokens
from service.auth.principal import Principal
from service.errors import (
    DATABASE_UNAVAILABLE,
    Forbidden,
    StepdownError,
    Unauthorized,
    is_api_request,
)

log = logging.getLogger(__name__)

PUBLIC = "public"
_ATTR = "_stepdown_access"
# Routes registered by libraries, whose view functions we do not decorate.
PUBLIC_ENDPOINTS = frozenset({"static", "api-docs.openapi_json"})


def public(view: Callable) -> Callable:
    """Anyone may call this route (login, health, token, JWKS, OpenAPI, ORUK feed)."""
    setattr(view, _ATTR, PUBLIC)
    return view


def requires(*permissions: str) -> Callable[[Callable], Callable]:
    """Signed-in callers holding every named permission; no arguments: any signed-in caller."""

    def decorate(view: Callable) -> Callable:
        setattr(view, _ATTR, frozenset(permissions))
        return view

    return decorate


def declared_access(app: Flask, endpoint: str | None, method: str) -> Any:
    if endpoint in PUBLIC_ENDPOINTS:
        return PUBLIC
    view = app.view_functions.get(endpoint) if endpoint else None
    if view is None:
        return None
    if hasattr(view, _ATTR):
        return getattr(view, _ATTR)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        name = "get" if method == "HEAD" else method.lower()
        handler = getattr(view_class, name, None)
        return getattr(handler, _ATTR, None)
    return None


def _authenticate() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("Use an OAuth2 bearer token.",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_request"'})
        return tokens.principal_from_bearer(credentials.strip())
    return sessions.principal_from_session()


def init_app(app: Flask) -> None:
    @app.before_request
    def _gate():
        if request.endpoint is None:  # no such route: let routing answer 404/405
            return None
        access = declared_access(current_app, request.endpoint, request.method)
        try:
            g.principal = _authenticate()
        except sessions.SessionExpired:
            g.principal = None
            if access == PUBLIC:
                return None
            if is_api_request():
                raise Unauthorized("Your session has expired.") from None
            return redirect(url_for("auth.session_expired"))
        except StepdownError:
            if access == PUBLIC:
                g.principal = None
                return None
            raise
        except DATABASE_UNAVAILABLE:
            # Liveness (/healthz) must not fail because a caller sent a session cookie while the
            # database is away; public routes do not need to know who is calling.
            if access == PUBLIC:
                g.principal = None
                return None
            raise
        if access == PUBLIC:
            return None
        principal: Principal | None = g.principal
        if principal is None:
            if is_api_request() or request.method not in ("GET", "HEAD"):
                raise Unauthorized("Sign in or present a bearer token.")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if access is None:
            log.error("route %s declares no access rule; denied", request.endpoint)
            raise Forbidden("This route is not available.")
        if (principal.user is not None and is_api_request()
                and request.method not in ("GET", "HEAD", "OPTIONS")
                and current_app.config.get("WTF_CSRF_ENABLED", True)):
            # A browser session calling the API must show the CSRF token (X-CSRFToken header).
            from service import csrf

            csrf.protect()
        missing = [p for p in access if not principal.can(p)]
        if missing:
            headers = None
            if principal.client is not None:  # RFC 6750 §3.1
                headers = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
            raise Forbidden("You do not have permission to do this.", headers=headers)
        return None
