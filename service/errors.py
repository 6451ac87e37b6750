"""Domain errors, and RFC 9457 problem+json under /api/ with HTML error pages elsewhere."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, g, json, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class StepdownError(Exception):
    """An error a user or client caused; its message is safe to show (no personal data)."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, errors: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(StepdownError):
    status = 401
    title = "Authentication required"


class Forbidden(StepdownError):
    status = 403
    title = "Forbidden"


class NotFound(StepdownError):
    status = 404
    title = "Not found"


class Conflict(StepdownError):
    status = 409
    title = "Conflict"


class PreconditionFailed(StepdownError):
    status = 412
    title = "Precondition failed"


class Invalid(StepdownError):
    status = 422
    title = "Unprocessable content"


class PreconditionRequired(StepdownError):
    status = 428
    title = "Precondition required"


class ServiceUnavailable(StepdownError):
    status = 503
    title = "Service unavailable"


class TooManyRequests(StepdownError):
    status = 429
    title = "Too many requests"


def is_api_request() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/oauth/")


def problem_response(status: int, title: str, detail: str | None = None, *,
                     errors: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    body["request_id"] = g.get("request_id")
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _html_error(status: int, title: str, detail: str | None, headers=None) -> Response:
    html = render_template("errors/error.html", code=status, title=title, detail=detail)
    response = Response(html, status=status, mimetype="text/html")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _field_errors(exc: HTTPException) -> dict[str, Any] | None:
    """webargs (used by flask-smorest) puts marshmallow messages on exc.data."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if not messages:
        return None
    # {"json": {"field": [...]}} -> {"field": [...]}; keep the location when it is not json.
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            for name, msgs in fields.items():
                flat[name if location in ("json", "form") else f"{location}.{name}"] = msgs
        else:
            flat[location] = fields
    return flat


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    title = exc.name
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stepdown"'
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    retry_after = exc.get_response().headers.get("Retry-After")
    if retry_after:
        headers["Retry-After"] = retry_after
    errors = _field_errors(exc)
    detail = "The request has invalid fields." if errors else exc.description
    if is_api_request():
        return problem_response(status, title, detail, errors=errors, headers=headers)
    return _html_error(status, title, exc.description if status < 500 else None, headers)


def handle_stepdown_error(exc: StepdownError) -> Response:
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="stepdown"')
    if is_api_request():
        return problem_response(exc.status, exc.title, exc.detail, errors=exc.errors,
                                headers=headers, **exc.extra)
    return _html_error(exc.status, exc.title, exc.detail, headers)


def where_it_failed(exc: BaseException) -> str:
    """The exception types and stack frames (file, line, code) of exc and its causes, without
    their messages: those can quote personal data (a name, SQL parameters with an NHS number)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        parts.append(f"{kind.__module__}.{kind.__qualname__} (message withheld)\n")
        parts.extend(traceback.format_tb(current.__traceback__))
        current = current.__cause__ or current.__context__
    return "".join(parts)


def handle_unexpected(exc: Exception) -> Response:
    # The type and frames only: the message and a formatted traceback can hold request values.
    log.error("unhandled %s\n%s", type(exc).__name__, where_it_failed(exc))
    title = "Internal server error"
    if is_api_request():
        return problem_response(500, title, "Sorry, there is a problem with the service.")
    return _html_error(500, "Sorry, there is a problem with the service", None)


# Seconds a client should wait before retrying when the database is away or overloaded.
RETRY_AFTER_SECONDS = "5"

# The database is unreachable, dropped the connection, cancelled a statement (statement
# timeout), found a deadlock, or the pool has no free connection: the request may succeed later.
DATABASE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The service is temporarily unavailable. Try again shortly.",
                              headers={"Retry-After": RETRY_AFTER_SECONDS})


def constraint_conflict() -> Conflict:
    return Conflict("The change conflicts with existing records.")


def handle_database_unavailable(exc: Exception) -> Response:
    # The exception text can quote SQL parameters (personal data): log its class only.
    orig = getattr(exc, "orig", None)
    log.warning("database unavailable (%s%s)", type(exc).__name__,
                f": {type(orig).__name__}" if orig is not None else "")
    return handle_stepdown_error(database_unavailable())


def handle_data_error(_exc: sa.exc.DataError) -> Response:
    # A value the column type cannot hold that validation let through; the field is not known.
    log.warning("a value was refused by the database (DataError)")
    return handle_stepdown_error(Invalid("A value in the request cannot be stored."))


def handle_integrity_error(_exc: sa.exc.IntegrityError) -> Response:
    # A constraint the operation did not check first (or a parallel request won the race).
    log.info("change refused by a database constraint")
    return handle_stepdown_error(constraint_conflict())


def init_app(app: Flask) -> None:
    # Registered after flask-smorest's Api so page errors are HTML, API errors problem+json.
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(StepdownError, handle_stepdown_error)
    for database_error in DATABASE_UNAVAILABLE:
        app.register_error_handler(database_error, handle_database_unavailable)
    app.register_error_handler(sa.exc.IntegrityError, handle_integrity_error)
    app.register_error_handler(sa.exc.DataError, handle_data_error)
    app.register_error_handler(Exception, handle_unexpected)
