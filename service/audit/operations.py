"""Write audit events: every read and change of personal data, and admin actions."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import g, has_request_context
from sqlmodel import Session

from models import AuditEvent
from service import clock
from service.auth.principal import Principal

log = logging.getLogger(__name__)


def _event(actor: Principal | None, action: str, record_type: str, record_id, person_id,
           outcome: str) -> AuditEvent:
    return AuditEvent(
        at=clock.now(),
        actor_user_id=actor.user_id if actor else None,
        actor_client_id=actor.client_id if actor else None,
        actor_role=actor.role if actor else None,
        actor_organisation_id=actor.organisation_id if actor else None,
        action=action,
        record_type=record_type,
        record_id=None if record_id is None else str(record_id),
        person_id=person_id,
        outcome=outcome,
        request_id=g.get("request_id") if has_request_context() else None,
    )


_INSERT = sa.insert(AuditEvent.__table__)


def record(db: Session, actor: Principal | None, action: str, record_type: str,
           record_id=None, person_id: int | None = None) -> None:
    """An allowed read or change, written at once in the request's transaction (one INSERT on
    the session's connection, without the unit of work: the trail has no foreign keys)."""
    db.connection().execute(_INSERT, allowed_row(actor, action, record_type, record_id,
                                                 person_id))


def allowed_row(actor: Principal | None, action: str, record_type: str, record_id=None,
                person_id: int | None = None) -> dict:
    """The audit_event row of an allowed read or change (for callers that write it within a
    statement of their own)."""
    return {
        "at": clock.now(),
        "actor_user_id": actor.user_id if actor else None,
        "actor_client_id": actor.client_id if actor else None,
        "actor_role": actor.role if actor else None,
        "actor_organisation_id": actor.organisation_id if actor else None,
        "action": action, "record_type": record_type,
        "record_id": None if record_id is None else str(record_id),
        "person_id": person_id, "outcome": "allowed",
        "request_id": g.get("request_id") if has_request_context() else None,
    }


def record_denied(actor: Principal | None, action: str, record_type: str, record_id=None,
                  person_id: int | None = None) -> None:
    """A refused attempt, committed on its own: the request itself will roll back."""
    from service.db import engine

    with Session(engine()) as own:
        own.add(_event(actor, action, record_type, record_id, person_id, "denied"))
        own.commit()
