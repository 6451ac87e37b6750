"""Prometheus metrics at /metrics, behind authentication (perm.METRICS_READ).

Queue depths are read from the database at scrape time, so every app process reports the
same truth. Request counts use prometheus_client's multiprocess mode under gunicorn when
PROMETHEUS_MULTIPROC_DIR is set.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
from flask import Blueprint, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from models import Flag, OutboxMessage, Referral
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session

bp = Blueprint("metrics", __name__)

REQUESTS = Counter("stepdown_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("stepdown_http_request_seconds", "HTTP request latency", ["endpoint"])


def _business_gauges(registry: CollectorRegistry) -> None:
    db = get_session()
    open_flags = Gauge("stepdown_open_flags", "Unresolved flags", ["urgency"], registry=registry)
    for urgency, count in db.execute(
        sa.select(Flag.urgency, sa.func.count()).where(Flag.status != "resolved")
        .group_by(Flag.urgency)
    ):
        open_flags.labels(urgency).set(count)
    pending = db.scalar(sa.select(sa.func.count()).where(OutboxMessage.status == "pending"))
    Gauge("stepdown_outbox_pending", "Notifications waiting for delivery",
          registry=registry).set(pending or 0)
    requested = db.scalar(sa.select(sa.func.count()).where(Referral.status == "requested"))
    Gauge("stepdown_referrals_requested", "Referrals waiting for an answer",
          registry=registry).set(requested or 0)


@bp.get("/metrics")
@requires(perm.METRICS_READ)
def metrics():
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    _business_gauges(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)

    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        endpoint = request.endpoint or "unmatched"
        REQUESTS.labels(request.method, endpoint, response.status_code).inc()
        started = g.get("request_started")
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response
