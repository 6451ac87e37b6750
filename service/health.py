"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, jsonify

from service.auth.access import public
from service.db import engine
from service.migrations import head_revision

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@public
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz():
    try:
        with engine().connect() as connection:
            current = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.SQLAlchemyError as exc:
        log.warning("readiness: database unavailable (%s)", type(exc).__name__)
        return jsonify(status="unavailable", database="unreachable"), 503
    head = head_revision()
    if current != head:
        return jsonify(status="unavailable", database="ok", migrations="behind"), 503
    return jsonify(status="ok", database="ok", migrations="head")


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
