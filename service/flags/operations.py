"""Flag use cases: raise (people, rules and timers), read, acknowledge, resolve, escalate.

`raise_flag` is called by other areas (referrals, consents, journeys) and by the sweep. It
never commits: the flag, its event, the audit record and the outbox email are written in
the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models import Flag, FlagEvent, Journey, Membership, Organisation, Referral, Team, User
from models.vocab import CONCERN_CATEGORIES, FLAG_TRIGGERS, URGENCIES
from models.working_days import acknowledgement_due
from service import clock
from service.audit import operations as audit
from service.auth.principal import Principal
from service.jobs.outbox import enqueue_email

log = logging.getLogger(__name__)

# Most urgent first; used for ordering the queue and for upgrades on re-trigger.
URGENCY_RANK = {"emergency": 0, "urgent": 1, "routine": 2}

TRIGGER_LABELS = {
    "concern": "a concern was raised",
    "responsibility-gap": "a statutory-only need is not covered by the receiving organisation",
    "declined-needs-specialist": "a referral was declined as needing specialist support",
    "not-answered": "a referral was not answered within the response target",
    "no-first-contact": "no first contact within 10 working days of acceptance",
    "missed-contacts": "3 missed contacts in a row",
    "review-overdue": "a journey review is overdue",
    "consent-withdrawn": "consent was withdrawn during an active journey",
    "lawful-basis-review": "a referral was shared on an alternative lawful basis",
}


def dedupe_key(trigger: str, journey: Journey, referral: Referral | None = None) -> str:
    """One unresolved flag per trigger and subject (the referral if any, else the journey)."""
    return f"{trigger}:r{referral.id}" if referral is not None else f"{trigger}:j{journey.id}"


def route(db: Session, journey: Journey, category: str | None) -> tuple[int, int | None]:
    """The owning team, and for safeguarding also the owning organisation's safeguarding team."""
    also = None
    if category == "safeguarding":
        team = db.get(Team, journey.team_id)
        organisation = db.get(Organisation, team.organisation_id) if team else None
        if organisation is not None and organisation.safeguarding_team_id not in (
            None, journey.team_id
        ):
            also = organisation.safeguarding_team_id
    return journey.team_id, also


def team_recipients(db: Session, team_id: int) -> list[str]:
    """Where a team's flag emails go: its shared inbox, else its duty clinicians and coordinators."""
    team = db.get(Team, team_id)
    if team is None:
        return []
    if team.email:
        return [team.email]
    rows = db.exec(
        select(User.email).join(Membership, Membership.user_id == User.id).where(
            Membership.team_id == team_id, User.is_active.is_(True),
            Membership.role.in_(("duty_clinician", "care_coordinator")),
        ).distinct().order_by(User.email)
    ).all()
    if not rows:
        log.warning("team %s has no inbox and no duty clinician: flag email not sent", team_id)
    return list(rows)


def team_manager_recipients(db: Session, team_id: int) -> list[str]:
    """The team managers (Membership.is_team_manager), who receive escalations."""
    rows = db.exec(
        select(User.email).join(Membership, Membership.user_id == User.id).where(
            Membership.team_id == team_id, Membership.is_team_manager.is_(True),
            User.is_active.is_(True),
        ).distinct().order_by(User.email)
    ).all()
    if not rows:  # nobody marked as manager: the escalation must still land somewhere
        return team_recipients(db, team_id)
    return list(rows)


def _notify_teams(db: Session, flag: Flag, subject: str, topic: str, now: datetime) -> None:
    teams = [flag.routed_team_id] + ([flag.also_routed_team_id] if flag.also_routed_team_id else [])
    sent: set[str] = set()
    for team_id in teams:
        for address in team_recipients(db, team_id):
            if address.lower() not in sent:
                sent.add(address.lower())
                enqueue_email(db, to=address, topic=topic, subject=subject,
                              link_path=f"/flags/{flag.id}", now=now)


def _subject(flag: Flag, what: str = "raised") -> str:
    return f"Stepdown: {flag.urgency} flag {what} - {TRIGGER_LABELS[flag.trigger]}"


def _find_unresolved(db: Session, key: str) -> Flag | None:
    return db.exec(select(Flag).where(Flag.dedupe_key == key, Flag.status != "resolved")).first()


def _retrigger(db: Session, flag: Flag, *, urgency: str, category: str | None,
               description: str | None, raised_by: Principal | None, journey: Journey,
               now: datetime) -> Flag:
    """The same trigger again on the same subject: add to the open flag's history.

    A more urgent re-trigger upgrades the flag (earlier acknowledgement target, emails the
    team again); a safeguarding concern adds the safeguarding team to the routing. Nothing is
    ever downgraded.
    """
    notes = []
    upgraded = False
    if URGENCY_RANK[urgency] < URGENCY_RANK[flag.urgency]:
        notes.append(f"urgency {flag.urgency} -> {urgency}")
        flag.urgency = urgency
        flag.acknowledgement_due = min(flag.acknowledgement_due, acknowledgement_due(urgency, now))
        upgraded = True
    if category == "safeguarding" and flag.also_routed_team_id is None:
        _, also = route(db, journey, category)
        if also is not None:
            flag.also_routed_team_id = also
            notes.append("safeguarding team added")
            upgraded = True
    if upgraded:
        flag.version += 1
        db.add(flag)
    db.add(FlagEvent(flag_id=flag.id, kind="re-triggered",
                     actor_user_id=raised_by.user_id if raised_by else None,
                     note="; ".join(notes + ([description] if description else []))[:4000] or None,
                     at=now))
    audit.record(db, raised_by, "re-trigger", "flag", flag.id, person_id=flag.person_id)
    db.flush()
    if upgraded:
        _notify_teams(db, flag, _subject(flag, "upgraded"), "flag.upgraded", now)
        db.flush()
    return flag


def raise_flag(db: Session, *, trigger: str, journey: Journey, referral: Referral | None = None,
               urgency: str, category: str | None = None, description: str | None = None,
               raised_by: Principal | None = None, now: datetime | None = None) -> Flag:
    """Raise "specialist statutory pick-up needed" for the journey's statutory team.

    Idempotent per (trigger, referral or journey): when an unresolved flag with the same
    dedupe key exists, a `re-triggered` event is added to it and it is returned. The partial
    unique index on unresolved flags enforces this in the database; a concurrent raise that
    loses the race is caught in a SAVEPOINT and turned into a re-trigger.

    `raised_by` is the person raising a concern (None: the system, i.e. a rule or timer).
    `now` defaults to the clock (the sweep passes its --as-of instant).
    Writes the flag, a `raised` FlagEvent, an audit event and one outbox email per routed
    team inbox; flushes, never commits.
    """
    if trigger not in FLAG_TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    if urgency not in URGENCIES:
        raise ValueError(f"unknown urgency {urgency!r}")
    if category is not None and category not in CONCERN_CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    if referral is not None and referral.journey_id != journey.id:
        raise ValueError("the referral belongs to another journey")
    now = now or clock.now()
    key = dedupe_key(trigger, journey, referral)
    options = dict(urgency=urgency, category=category, description=description,
                   raised_by=raised_by, journey=journey, now=now)

    existing = _find_unresolved(db, key)
    if existing is not None:
        return _retrigger(db, existing, **options)

    routed, also = route(db, journey, category)
    flag = Flag(
        person_id=journey.person_id, journey_id=journey.id,
        referral_id=referral.id if referral is not None else None,
        trigger=trigger, category=category, urgency=urgency, dedupe_key=key,
        description=description,
        raised_by_user_id=raised_by.user_id if raised_by else None,
        raised_by_organisation_id=raised_by.organisation_id if raised_by else None,
        routed_team_id=routed, also_routed_team_id=also, status="open", raised_at=now,
        acknowledgement_due=acknowledgement_due(urgency, now),
    )
    try:
        with db.begin_nested():
            db.add(flag)
            db.flush()
    except IntegrityError:
        # Another transaction raised the same flag between our read and our insert.
        existing = _find_unresolved(db, key)
        if existing is None:
            raise
        return _retrigger(db, existing, **options)

    db.add(FlagEvent(flag_id=flag.id, kind="raised",
                     actor_user_id=raised_by.user_id if raised_by else None,
                     note=TRIGGER_LABELS[trigger], at=now))
    audit.record(db, raised_by, "raise", "flag", flag.id, person_id=flag.person_id)
    _notify_teams(db, flag, _subject(flag), "flag.raised", now)
    db.flush()
    return flag


def referral_of(db: Session, flag: Flag) -> Referral | None:
    return db.get(Referral, flag.referral_id) if flag.referral_id else None


def unresolved_flags_for(db: Session, keys: list[str]) -> set[str]:
    """Which of these dedupe keys already have an unresolved flag (one indexed query)."""
    if not keys:
        return set()
    return set(db.exec(select(Flag.dedupe_key).where(
        Flag.dedupe_key.in_(keys), Flag.status != "resolved")).all())


__all__ = [
    "TRIGGER_LABELS",
    "URGENCY_RANK",
    "dedupe_key",
    "raise_flag",
    "route",
    "team_manager_recipients",
    "team_recipients",
    "unresolved_flags_for",
]
