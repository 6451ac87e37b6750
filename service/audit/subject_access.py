"""Who has seen or changed a person's record: the audit trail for subject access requests.

Allowed (with audit:read) for
- org admins of an organisation that owns one of the person's journeys, or that registered
  the person;
- the owning team: the team of one of the person's journeys (a caller without a team works
  at organisation level), or, before any journey exists, the organisation that registered them.
Anyone else gets 404 (audited), so the question does not reveal that the person exists.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from models import ApiClient, AuditEvent, Journey, Organisation, Person, Team, User
from service.audit.operations import record, record_denied
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import NotFound


def _may_read_trail(db: Session, actor: Principal, person: Person) -> bool:
    if actor.organisation_id is None or actor.organisation_kind != "statutory":
        return False
    org_teams = sa.select(Team.id).where(Team.organisation_id == actor.organisation_id)
    has_journey = sa.exists().where(Journey.person_id == person.id)
    registered_here = person.created_by_organisation_id == actor.organisation_id
    if actor.can(perm.ORGANISATION_ADMIN) or actor.team_id is None:
        owns = sa.exists().where(Journey.person_id == person.id, Journey.team_id.in_(org_teams))
        return bool(db.scalar(sa.select(owns))) or registered_here
    owns = sa.exists().where(Journey.person_id == person.id, Journey.team_id == actor.team_id)
    if db.scalar(sa.select(owns)):
        return True
    return registered_here and not db.scalar(sa.select(has_journey))


def person_audit_trail(db: Session, actor: Principal, person_id: int, *, limit: int,
                       after: int | None) -> tuple[list[dict], int | None]:
    """Newest first, keyset-paginated by event id. Each row names the actor (user or API
    client), their role and organisation, the action, the record, the outcome and the time."""
    actor.require(perm.AUDIT_READ)
    person = db.get(Person, person_id)
    if person is None or not _may_read_trail(db, actor, person):
        record_denied(actor, "read", "audit", person_id,
                      person_id=person_id if person is not None else None)
        raise NotFound("No such person.")
    query = (
        select(AuditEvent, User.display_name, ApiClient.name, Organisation.name)
        .join(User, User.id == AuditEvent.actor_user_id, isouter=True)
        .join(ApiClient, ApiClient.id == AuditEvent.actor_client_id, isouter=True)
        .join(Organisation, Organisation.id == AuditEvent.actor_organisation_id, isouter=True)
        .where(AuditEvent.person_id == person.id)
        .order_by(AuditEvent.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(AuditEvent.id < after)
    rows = list(db.exec(query).all())
    record(db, actor, "read", "audit", person.id, person_id=person.id)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{
        "id": event.id,
        "at": event.at,
        "actor_user_name": user_name,
        "actor_client_name": client_name,
        "actor_role": event.actor_role,
        "actor_organisation": organisation_name,
        "action": event.action,
        "record_type": event.record_type,
        "record_id": event.record_id,
        "outcome": event.outcome,
    } for event, user_name, client_name, organisation_name in rows]
    return items, (rows[-1][0].id if more else None)
