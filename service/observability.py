"""Request ids on every response and log line; logs carry no personal data."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, has_request_context, request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_stepdown", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._stepdown = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    # Werkzeug's access log prints full URLs with query strings; keep it but only paths.
    logging.getLogger("werkzeug").addFilter(_StripQuery())
    for noisy in ("alembic", "weasyprint", "fontTools", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _StripQuery(logging.Filter):
    _query = re.compile(r"\?[^ \"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._query.sub("?…", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def init_app(app: Flask) -> None:
    log = logging.getLogger("stepdown.request")

    @app.before_request
    def _assign_request_id() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # The route template, not the path: a path can carry an NHS number or a name.
        log.info("%s %s %s", request.method,
                 request.url_rule.rule if request.url_rule else "(no route)", response.status_code)
        return response
