"""Who may see which person and referral (DESIGN §2: access is always scoped).

- A statutory caller sees a person when their team owns one of the person's journeys, they
  are named in its MDT, a flag about the person is routed to their team, or their
  organisation registered the person and no journey exists yet. A caller without a team
  (an API client of the whole trust) works at organisation level.
- A VCSE caller sees a person only through a sent (non-draft) referral to their organisation,
  and only while an active, unexpired consent names their organisation or the referral
  records an alternative lawful basis. Without that they keep a tombstone of the referral.

Out of scope is indistinguishable from absent: callers get 404, and the refusal is audited.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models import Consent, Flag, Journey, JourneyMember, Person, Referral, Team
from service import clock
from service.audit.operations import record_denied
from service.auth.principal import Principal
from service.errors import NotFound

FULL = "full"
TOMBSTONE = "tombstone"


def consent_active_clause(person_id, organisation_id, now: datetime):
    """SQL: an active, unexpired consent names this organisation for this person."""
    return sa.exists().where(
        Consent.person_id == person_id,
        Consent.organisation_id == organisation_id,
        Consent.withdrawn_at.is_(None),
        sa.or_(Consent.expires_at.is_(None), Consent.expires_at > now),
    )


def consent_covers(db: Session, person_id: int, organisation_id: int, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return bool(db.scalar(sa.select(consent_active_clause(person_id, organisation_id, now))))


def _team_clause(actor: Principal, team_column):
    """SQL: the team column is the caller's team (or any team of the caller's organisation)."""
    if actor.team_id is not None:
        return team_column == actor.team_id
    return team_column.in_(sa.select(Team.id).where(Team.organisation_id == actor.organisation_id))


def visible_people_clause(actor: Principal, now: datetime | None = None, person_id=Person.id):
    """SQL boolean: the caller may see this person (for WHERE clauses of lists)."""
    now = now or clock.now()
    if actor.organisation_kind == "vcse":
        return sa.exists().where(
            Referral.person_id == person_id,
            Referral.receiving_organisation_id == actor.organisation_id,
            Referral.status != "draft",
            sa.or_(Referral.alternative_basis.is_not(None),
                   consent_active_clause(person_id, actor.organisation_id, now)),
        )
    conditions = [
        sa.exists().where(Journey.person_id == person_id, _team_clause(actor, Journey.team_id)),
        sa.exists().where(Flag.person_id == person_id,
                          sa.or_(_team_clause(actor, Flag.routed_team_id),
                                 _team_clause(actor, Flag.also_routed_team_id))),
        sa.and_(
            sa.exists().where(Person.id == person_id,
                              Person.created_by_organisation_id == actor.organisation_id),
            ~sa.exists().where(Journey.person_id == person_id),
        ),
    ]
    if actor.user_id is not None:
        conditions.append(sa.exists().where(
            JourneyMember.user_id == actor.user_id,
            JourneyMember.journey_id.in_(sa.select(Journey.id).where(Journey.person_id == person_id)),
        ))
    return sa.or_(*conditions)


def person_visible(db: Session, actor: Principal, person_id: int) -> bool:
    return bool(db.scalar(sa.select(visible_people_clause(actor, person_id=person_id))))


def require_person(db: Session, actor: Principal, person_id: int, action: str = "read") -> Person:
    """The person if the caller may see them; otherwise 404 and a denied audit event."""
    person = db.get(Person, person_id)
    if person is None or not person_visible(db, actor, person_id):
        record_denied(actor, action, "person", person_id,
                      person_id=person_id if person is not None else None)
        raise NotFound("No such person.")
    return person


def visible_referrals_clause(actor: Principal):
    """SQL boolean on Referral: the caller may at least list this referral (maybe as tombstone)."""
    if actor.organisation_kind == "vcse":
        return sa.and_(Referral.receiving_organisation_id == actor.organisation_id,
                       Referral.status != "draft")
    return sa.or_(
        _team_clause(actor, Referral.referring_team_id),
        Referral.journey_id.in_(sa.select(Journey.id).where(_team_clause(actor, Journey.team_id))),
    )


def referral_access(db: Session, actor: Principal, referral: Referral) -> str | None:
    """FULL, TOMBSTONE (VCSE after consent withdrawal) or None (not visible at all)."""
    visible = db.scalar(sa.select(sa.exists().where(Referral.id == referral.id,
                                                    visible_referrals_clause(actor))))
    if not visible:
        if actor.organisation_kind != "vcse" and person_visible(db, actor, referral.person_id):
            return FULL  # e.g. an MDT member or the flag's team
        return None
    if actor.organisation_kind != "vcse" or referral.alternative_basis is not None:
        return FULL
    return FULL if consent_covers(db, referral.person_id, actor.organisation_id) else TOMBSTONE


@dataclass(frozen=True)
class _ScopePlaceholders:
    """Stands in for a caller when a scope clause is built once with bind parameters."""

    organisation_kind: str | None
    team_id: Any
    organisation_id: Any


# Adds to the referral's query (columns, joins) what an operation needs besides the referral;
# may use the bind parameters :referral_id and :now. A module-level function, so the query is
# built once.
ReferralContext = Callable[[sa.Select], sa.Select]


def _reads_referring_team(vcse: bool, has_team: bool) -> bool:
    """Whether the referral's access query also reads the referring team (its 4th column):
    deciding whether a statutory caller without a team is the referrer needs the team's
    organisation (a VCSE caller never is: it cannot refer)."""
    return not has_team and not vcse


@functools.cache
def _referral_access_query(vcse: bool, has_team: bool, context: ReferralContext | None = None):
    """The referral with its access checks as columns, built once per kind of caller (every
    referral request runs it; building the statement costs more than running it); with a
    `context`, also what the operation will need, in the same query."""
    caller = _ScopePlaceholders("vcse" if vcse else None,
                                sa.bindparam("team_id") if has_team else None,
                                sa.bindparam("organisation_id"))
    covered = (sa.or_(Referral.alternative_basis.is_not(None),
                      consent_active_clause(Referral.person_id, caller.organisation_id,
                                            sa.bindparam("now")))
               if vcse else sa.true())
    query = (select(Referral, visible_referrals_clause(caller).label("listed"),
                    covered.label("covered"))
             .where(Referral.id == sa.bindparam("referral_id")))
    if _reads_referring_team(vcse, has_team):
        query = query.add_columns(Team).outerjoin(Team, Team.id == Referral.referring_team_id)
    if context is not None:
        query = context(query)
    return query


def _referral_with_access(db: Session, actor: Principal, referral_id: int,
                          context: ReferralContext | None = None
                          ) -> tuple[Referral | None, str | None, tuple]:
    """The referral, `referral_access` and the context's columns in one query (the checks are
    columns of the row).

    A caller without a team also gets the referring team loaded into the session.
    """
    vcse = actor.organisation_kind == "vcse"
    params = {"referral_id": referral_id, "organisation_id": actor.organisation_id}
    if actor.team_id is not None:
        params["team_id"] = actor.team_id
    if vcse or context is not None:
        params["now"] = clock.now()
    query = _referral_access_query(vcse, actor.team_id is not None, context)
    row = db.exec(query, params=params).first()
    if row is None:
        return None, None, ()
    referral, listed, covered = row[0], bool(row[1]), bool(row[2])
    extra = 3
    if _reads_referring_team(vcse, actor.team_id is not None):
        extra = 4
        if row[3] is not None:
            # The identity map holds objects weakly: keep the team for `db.get` later on.
            db.info.setdefault("stepdown.kept", []).append(row[3])
    found = tuple(row[extra:])
    if not listed:
        if not vcse and person_visible(db, actor, referral.person_id):
            return referral, FULL, found  # e.g. an MDT member or the flag's team
        return referral, None, found
    return referral, FULL if covered else TOMBSTONE, found


def require_referral(db: Session, actor: Principal, referral_id: int, action: str = "read",
                     allow_tombstone: bool = False) -> tuple[Referral, str]:
    """The referral and the caller's access level; 404 (audited) when out of scope."""
    referral, level, _found = require_referral_with(db, actor, referral_id, None, action,
                                                    allow_tombstone)
    return referral, level


def require_referral_with(db: Session, actor: Principal, referral_id: int,
                          context: ReferralContext | None, action: str = "read",
                          allow_tombstone: bool = False) -> tuple[Referral, str, tuple]:
    """`require_referral`, and the context's columns read in the same query."""
    referral, level, found = _referral_with_access(db, actor, referral_id, context)
    if level is None or (level == TOMBSTONE and not allow_tombstone):
        record_denied(actor, action, "referral", referral_id,
                      person_id=referral.person_id if referral is not None else None)
        raise NotFound("No such referral.")
    return referral, level, found
