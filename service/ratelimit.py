"""Rate limits (Flask-Limiter), shared by every area: `@limiter.limit("10/minute")`.

Counters live in RATELIMIT_STORAGE_URI: `memory://` for one process (development, tests),
`redis://host:6379/0` when several app processes serve the same users (production), so a
limit holds across workers and hosts. RATELIMIT_ENABLED=false turns every limit off.

A breach raises Flask-Limiter's RateLimitExceeded (a 429 HTTPException) carrying a
`Retry-After` header; `service.errors` turns it into problem+json under /api and /oauth
and an HTML page elsewhere, keeping the header.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

log = logging.getLogger(__name__)

# Per client IP address. Behind a load balancer the app must trust its X-Forwarded-For
# (werkzeug ProxyFix), or every user shares the balancer's address.
LOGIN_LIMIT = "10/minute"
OAUTH_TOKEN_LIMIT = "30/minute"  # noqa: S105 - a rate, not a secret
# Searching by NHS number: per caller, so one account cannot walk the number space.
SEARCH_LIMIT = "60/minute"


def caller_key() -> str:
    """The signed-in user or API client, else the client address."""
    from flask import g

    principal = g.get("principal")
    return principal.actor_key if principal is not None else get_remote_address()


def _retry_after(limit: RequestLimit) -> Response:
    """Give the 429 a Retry-After (whole seconds until the window resets, at least 1)."""
    seconds = max(1, math.ceil(limit.reset_at - time.time()))
    response = Response(status=429)
    response.headers["Retry-After"] = str(seconds)
    return response


limiter = Limiter(key_func=get_remote_address, on_breach=_retry_after, headers_enabled=False,
                  strategy="fixed-window")


def init_app(app: Flask, settings) -> None:
    # One module-level limiter (so areas can decorate views at import time); each app sets
    # its own switch and storage. In one process only the last app initialised counts.
    app.config["RATELIMIT_ENABLED"] = settings.RATELIMIT_ENABLED
    app.config["RATELIMIT_STORAGE_URI"] = settings.RATELIMIT_STORAGE_URI
    limiter.enabled = settings.RATELIMIT_ENABLED
    if (settings.is_production and settings.RATELIMIT_ENABLED
            and settings.RATELIMIT_STORAGE_URI.startswith("memory")):
        log.warning("rate limits use memory storage: each process counts on its own; "
                    "set RATELIMIT_STORAGE_URI to a redis:// URL")
    limiter.init_app(app)
