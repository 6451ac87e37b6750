"""Flag use cases: raise (people, rules and timers), read, acknowledge, resolve, escalate.

`raise_flag` is called by other areas (referrals, consents, journeys) and by the sweep. It
never commits: the flag, its event, the audit record and the outbox email are written in
the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models import (
    AuditEvent,
    Flag,
    FlagEvent,
    Journey,
    Membership,
    Offer,
    Organisation,
    Referral,
    ReferralEvent,
    Team,
    User,
)
from models.flag_rules import in_safety_net, safety_net_end
from models.flags import EVENT_NOTE_MAX
from models.types import UTCDateTime
from models.vocab import CONCERN_CATEGORIES, FLAG_TRIGGERS, URGENCIES
from models.working_days import acknowledgement_due
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Conflict, Invalid, NotFound, PreconditionFailed
from service.http import etag_of, require_if_match
from service.jobs.outbox import enqueue_email
from service.scoping import person_visible, require_referral

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


def _notify_teams(db: Session, flag: Flag, subject: str, topic: str) -> None:
    """Email each routed team once (stamped by the clock, not the sweep's --as-of: delivery is
    about real time)."""
    teams = [flag.routed_team_id] + ([flag.also_routed_team_id] if flag.also_routed_team_id else [])
    sent: set[str] = set()
    for team_id in teams:
        for address in team_recipients(db, team_id):
            if address.lower() not in sent:
                sent.add(address.lower())
                enqueue_email(db, to=address, topic=topic, subject=subject,
                              link_path=f"/flags/{flag.id}")


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
                     note="; ".join(notes + ([description] if description else []))[:EVENT_NOTE_MAX]
                     or None,
                     at=now))
    audit.record(db, raised_by, "re-trigger", "flag", flag.id, person_id=flag.person_id)
    db.flush()
    if upgraded:
        _notify_teams(db, flag, _subject(flag, "upgraded"), "flag.upgraded")
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
    _notify_teams(db, flag, _subject(flag), "flag.raised")
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




# --- working the flags (API and pages) --------------------------------------------------------

EMERGENCY_GUIDANCE = {
    "level": "emergency",
    "message": "If someone is in immediate danger, call 999 or the crisis line now. Stepdown is "
               "not an emergency channel: the statutory team has been told, but may not see "
               "this straight away.",
}
# Roles that work a team's flag queue (the routed teams' duty clinicians / care coordinators).
FLAG_WORKER_ROLES = ("duty_clinician", "care_coordinator")


def flag_etag(flag: Flag) -> str:
    return etag_of("flag", flag.id, flag.version)


def _my_teams_clause(actor: Principal):
    """SQL: the flag is routed (or also routed) to the caller's team, or without a team, to any
    team of the caller's organisation."""
    if actor.team_id is not None:
        return sa.or_(Flag.routed_team_id == actor.team_id,
                      Flag.also_routed_team_id == actor.team_id)
    teams = sa.select(Team.id).where(Team.organisation_id == actor.organisation_id)
    return sa.or_(Flag.routed_team_id.in_(teams), Flag.also_routed_team_id.in_(teams))


def routed_to_me(actor: Principal, flag: Flag, db: Session) -> bool:
    """Whether the flag is routed to the actor's team (or, for a role without a team, to any
    team of their organisation)."""
    if actor.organisation_kind == "vcse":
        return False
    if actor.team_id is not None:
        return actor.team_id in (flag.routed_team_id, flag.also_routed_team_id)
    teams = {t for t in (flag.routed_team_id, flag.also_routed_team_id) if t is not None}
    return bool(db.scalar(sa.select(sa.exists().where(
        Team.id.in_(teams), Team.organisation_id == actor.organisation_id))))


def require_flag(db: Session, actor: Principal, flag_id: int, action: str = "read",
                 *, work: bool = False, lock: bool = False) -> Flag:
    """The flag if it is routed to the caller's team(s); otherwise 404 (audited).

    `work`: acknowledging and resolving need a team member in a flag-working role (an API
    client or an organisation-level membership may read, not work, a team's flags).
    """
    query = select(Flag).where(Flag.id == flag_id)
    if lock and db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    flag = db.exec(query).first()
    allowed = flag is not None and routed_to_me(actor, flag, db)
    if allowed and work:
        allowed = (actor.team_id is not None and actor.user_id is not None
                   and actor.role in FLAG_WORKER_ROLES)
    if not allowed:
        audit.record_denied(actor, action, "flag", flag_id,
                            person_id=flag.person_id if flag is not None else None)
        raise NotFound("No such flag.")
    return flag


def flag_view(flag: Flag, now: datetime, events: list[FlagEvent] | None = None) -> dict:
    view = {name: getattr(flag, name) for name in (
        "id", "person_id", "journey_id", "referral_id", "trigger", "category", "urgency",
        "status", "description", "routed_team_id", "also_routed_team_id", "raised_by_user_id",
        "raised_by_organisation_id", "raised_at", "acknowledgement_due", "acknowledged_at",
        "acknowledged_by_user_id", "escalated_at", "resolved_at", "resolved_by_user_id",
        "outcome", "resolution_note", "version")}
    view["overdue"] = flag.status == "open" and flag.acknowledgement_due < now
    if events is not None:
        view["events"] = [{"kind": e.kind, "at": e.at, "actor_user_id": e.actor_user_id,
                           "note": e.note} for e in events]
    return view


def flag_events(db: Session, flag_id: int) -> list[FlagEvent]:
    return list(db.exec(select(FlagEvent).where(FlagEvent.flag_id == flag_id)
                        .order_by(FlagEvent.at, FlagEvent.id)).all())


# The queue order: most urgent first, then most overdue (earliest due) first. urgency_rank is
# computed by the database from urgency; the queue indexes are in exactly this order.
_QUEUE_ORDER = (Flag.urgency_rank, Flag.acknowledgement_due, Flag.id)


def _encode_cursor(flag: Flag) -> str:
    due = flag.acknowledgement_due.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{URGENCY_RANK[flag.urgency]}.{due}.{flag.id}"


def _decode_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        rank, due, flag_id = cursor.split(".")
        return (int(rank), datetime.strptime(due, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC),
                int(flag_id))
    except ValueError:
        raise Invalid("The cursor is not valid; start from the first page.",
                      errors={"cursor": ["Use next_cursor from the previous page"]}) from None


def list_flags(db: Session, actor: Principal, *, status: str = "active", limit: int = 25,
               cursor: str | None = None) -> tuple[list[dict], str | None]:
    """The duty queue of the caller's team(s): most urgent, then most overdue, first.

    Keyset-paginated on (urgency rank, acknowledgement due, id); two queries per page whatever
    its size (the page, and the audit events written in one batch).
    """
    actor.require(perm.FLAGS_READ)
    if actor.organisation_kind == "vcse":
        return [], None
    statuses = ("open", "acknowledged") if status == "active" else (status,)
    after = None
    if cursor:
        rank, due, after_id = _decode_cursor(cursor)
        after = sa.tuple_(*_QUEUE_ORDER) > sa.tuple_(
            sa.literal(rank), sa.literal(due, UTCDateTime), sa.literal(after_id))
    if actor.team_id is not None:
        # One index range scan per (routed / also routed, status), each reading at most a page;
        # merged and cut to the page. Constant work whatever the length of the queue.
        branches = []
        for team_column in (Flag.routed_team_id, Flag.also_routed_team_id):
            for one_status in statuses:
                branch = select(Flag.id.label("id")).where(team_column == actor.team_id,
                                                           Flag.status == one_status)
                if after is not None:
                    branch = branch.where(after)
                branches.append(sa.select(branch.order_by(*_QUEUE_ORDER).limit(limit + 1)
                                          .subquery().c.id))
        query = select(Flag).where(Flag.id.in_(sa.union(*branches)))
    else:  # an organisation-level caller: every team of the organisation (rare; sorted)
        query = select(Flag).where(_my_teams_clause(actor), Flag.status.in_(statuses))
        if after is not None:
            query = query.where(after)
    rows = list(db.exec(query.order_by(*_QUEUE_ORDER).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    now = clock.now()
    if rows:  # every read of personal data is audited: one event per flag, one INSERT in all
        template = audit._event(actor, "list", "flag", None, None, "allowed").model_dump(
            exclude={"id"})
        db.execute(sa.insert(AuditEvent).values([
            {**template, "record_id": str(f.id), "person_id": f.person_id} for f in rows]))
    return [flag_view(f, now) for f in rows], (_encode_cursor(rows[-1]) if more else None)


def get_flag(db: Session, actor: Principal, flag_id: int) -> tuple[Flag, list[FlagEvent]]:
    actor.require(perm.FLAGS_READ)
    flag = require_flag(db, actor, flag_id)
    audit.record(db, actor, "read", "flag", flag.id, person_id=flag.person_id)
    db.flush()
    return flag, flag_events(db, flag.id)


def _bump(db: Session, flag: Flag, **values) -> None:
    """Conditional update on the version the caller saw (a parallel change → 412)."""
    result = db.execute(sa.update(Flag).where(Flag.id == flag.id, Flag.version == flag.version)
                        .values(version=flag.version + 1, **values))
    if result.rowcount != 1:
        raise PreconditionFailed("The flag has changed since you read it. Read it again.")
    db.refresh(flag)


def acknowledge_flag(db: Session, actor: Principal, flag_id: int, data: dict,
                     expected_version: int | None = None) -> Flag:
    """The duty clinician has seen it and is on it: stops the escalation clock."""
    actor.require(perm.FLAGS_WORK)
    flag = require_flag(db, actor, flag_id, action="acknowledge", work=True)
    _check_version(flag, expected_version)
    if flag.status != "open":
        raise Conflict(f"The flag is already {flag.status}.", status_now=flag.status)
    now = clock.now()
    _bump(db, flag, status="acknowledged", acknowledged_at=now,
          acknowledged_by_user_id=actor.user_id)
    db.add(FlagEvent(flag_id=flag.id, kind="acknowledged", actor_user_id=actor.user_id,
                     note=data.get("note"), at=now))
    audit.record(db, actor, "acknowledge", "flag", flag.id, person_id=flag.person_id)
    db.flush()
    return flag


def _check_version(flag: Flag, expected_version: int | None) -> None:
    if expected_version is None:
        require_if_match("flag", flag.id, flag.version)
    elif expected_version != flag.version:
        raise PreconditionFailed("The flag has changed since you read it. Read it again.",
                                 headers={"ETag": flag_etag(flag)})


def _close(db: Session, actor: Principal | None, flag: Flag, outcome: str, note: str | None,
           now: datetime) -> None:
    values = {"status": "resolved", "outcome": outcome, "resolution_note": note,
              "resolved_at": now, "resolved_by_user_id": actor.user_id if actor else None}
    if flag.acknowledged_at is None:  # resolving is also seeing it
        values.update(acknowledged_at=now,
                      acknowledged_by_user_id=actor.user_id if actor else None)
    _bump(db, flag, **values)
    db.add(FlagEvent(flag_id=flag.id, kind="resolved", actor_user_id=actor.user_id if actor else None,
                     note=f"{outcome}: {note}" if note else outcome, at=now))
    audit.record(db, actor, "resolve", "flag", flag.id, person_id=flag.person_id)


def resolve_flag(db: Session, actor: Principal, flag_id: int, data: dict,
                 expected_version: int | None = None) -> Flag:
    """Close the flag with an outcome. `stepped-up` also steps the journey up if it has not
    been already (the same rules as POST /journeys/{id}/step-up: inside the safety net)."""
    actor.require(perm.FLAGS_WORK)
    flag = require_flag(db, actor, flag_id, action="resolve", work=True, lock=True)
    _check_version(flag, expected_version)
    if flag.status == "resolved":
        raise Conflict("The flag is already resolved.", status_now=flag.status)
    outcome = data["outcome"]
    if outcome == "stepped-up":
        journey = db.get(Journey, flag.journey_id)
        if journey.stepped_up_at is None:
            actor.require(perm.STEP_UP)
            step_up(db, actor, journey.id, {"flag_id": flag.id, "note": data.get("note"),
                                            "hold_open_referrals":
                                                data.get("hold_open_referrals", False)},
                    expected_version=journey.version, _flag=flag)
            db.refresh(flag)
            return flag
    _close(db, actor, flag, outcome, data.get("note"), clock.now())
    db.flush()
    return flag


def raise_concern(db: Session, actor: Principal, data: dict) -> tuple[Flag, bool]:
    """A VCSE worker / manager or a peer worker raises a concern about a person referred to them.

    VCSE callers name the referral to their organisation (scoped like reading it); statutory
    peer workers may name the referral or a journey whose person they can see. Returns the
    flag and whether it was added to an open flag (same concern on the same referral).
    """
    actor.require(perm.FLAGS_RAISE)
    referral = None
    if data.get("referral_id") is not None:
        referral, _level = require_referral(db, actor, data["referral_id"], action="raise-flag")
        journey = db.get(Journey, referral.journey_id)
        if data.get("journey_id") not in (None, journey.id):
            raise Invalid("The referral belongs to another journey.",
                          errors={"journey_id": ["Leave this out, or name the referral's journey"]})
    else:
        if actor.organisation_kind == "vcse":
            raise Invalid("Name the referral the concern is about.",
                          errors={"referral_id": ["Name the referral to your organisation"]})
        journey = db.get(Journey, data["journey_id"])
        if journey is None or not person_visible(db, actor, journey.person_id):
            audit.record_denied(actor, "raise-flag", "journey", data["journey_id"],
                                person_id=journey.person_id if journey is not None else None)
            raise NotFound("No such journey.")
    before = _find_unresolved(db, dedupe_key("concern", journey, referral))
    flag = raise_flag(db, trigger="concern", journey=journey, referral=referral,
                      urgency=data["urgency"], category=data["category"],
                      description=data.get("description"), raised_by=actor)
    return flag, before is not None


# --- step-up ----------------------------------------------------------------------------------

STEP_UP_CONTINUE_STATES = ("requested", "accepted", "in-progress", "on-hold")


def _can_step_up(db: Session, actor: Principal, journey: Journey, flag: Flag | None) -> bool:
    """The journey's owning team (or organisation, without a team), or a team the flag is routed
    to (e.g. the safeguarding team answering a safeguarding flag)."""
    if actor.organisation_kind == "vcse":
        return False
    if actor.team_id is not None and actor.team_id == journey.team_id:
        return True
    if actor.team_id is None:
        team = db.get(Team, journey.team_id)
        if team is not None and team.organisation_id == actor.organisation_id:
            return True
    return flag is not None and routed_to_me(actor, flag, db)


def _vcse_recipients(db: Session, referral: Referral) -> list[str]:
    offer = db.get(Offer, referral.offer_id)
    if offer is not None and offer.email:
        return [offer.email]
    return list(db.exec(select(Team.email).where(
        Team.organisation_id == referral.receiving_organisation_id, Team.email.is_not(None))
        .order_by(Team.id)).all())


def step_up(db: Session, actor: Principal, journey_id: int, data: dict,
            expected_version: int | None = None, _flag: Flag | None = None) -> dict:
    """The statutory team takes the person back without a new front-door referral.

    Allowed while the journey is active and not past its safety net (models.flag_rules).
    Records stepped_up_at and the trigger; resolves the flag (if any) `stepped-up`; open VCSE
    referrals continue, or with `hold_open_referrals` the in-progress ones go on hold (reason
    `stepped-up`, with a referral event); each receiving organisation is told by email.
    """
    from service.referrals.hooks import notify_status_change

    actor.require(perm.STEP_UP)
    journey = db.get(Journey, journey_id)
    flag = _flag
    if flag is None and data.get("flag_id") is not None:
        flag = db.get(Flag, data["flag_id"])
        if flag is None or not routed_to_me(actor, flag, db):
            audit.record_denied(actor, "step-up", "flag", data["flag_id"],
                                person_id=flag.person_id if flag is not None else None)
            raise Invalid("No such flag.", errors={"flag_id": ["No such flag for this journey"]})
    if journey is None or not _can_step_up(db, actor, journey, flag):
        audit.record_denied(actor, "step-up", "journey", journey_id,
                            person_id=journey.person_id if journey is not None else None)
        raise NotFound("No such journey.")
    if flag is not None and flag.journey_id != journey.id:
        raise Invalid("The flag is about another journey.",
                      errors={"flag_id": ["No such flag for this journey"]})
    if expected_version is None:
        require_if_match("journey", journey.id, journey.version)
    elif expected_version != journey.version:
        raise PreconditionFailed("The journey has changed since you read it. Read it again.",
                                 headers={"ETag": etag_of("journey", journey.id, journey.version)})
    if flag is not None and flag.status == "resolved":
        raise Conflict("The flag is already resolved.", status_now=flag.status)

    now = clock.now()
    today = now.astimezone(ZoneInfo("Europe/London")).date()
    if journey.stepped_up_at is not None:
        raise Conflict("This journey has already been stepped up.",
                       stepped_up_at=journey.stepped_up_at.isoformat())
    if not in_safety_net(journey.status, journey.discharged_on, journey.safety_net_ends, today):
        ends = journey.safety_net_ends or (
            safety_net_end(journey.discharged_on, journey.safety_net_days)
            if journey.discharged_on else None)
        if journey.status in ("active", "finished") and ends is not None and today > ends:
            raise Conflict(
                f"The safety net closed on {ends.isoformat()}: fast-track step-up is no longer "
                "available for this journey. Refer the person to the statutory service through "
                "the usual front door.", safety_net_ends=ends.isoformat(), reason="safety-net-closed")
        raise Conflict(f"The journey is {journey.status}: only an active journey can be "
                       "stepped up.", status_now=journey.status, reason="journey-not-active")

    trigger = (f"flag:{flag.trigger}" if flag is not None else data["trigger"].strip())[:60]
    result = db.execute(
        sa.update(Journey).where(Journey.id == journey.id, Journey.version == journey.version)
        .values(stepped_up_at=now, step_up_trigger=trigger,
                step_up_flag_id=flag.id if flag is not None else None,
                step_up_note=data.get("note"), version=journey.version + 1, updated_at=now))
    if result.rowcount != 1:
        raise PreconditionFailed("The journey has changed since you read it. Read it again.")
    db.refresh(journey)
    audit.record(db, actor, "step-up", "journey", journey.id, person_id=journey.person_id)
    if flag is not None:
        _close(db, actor, flag, "stepped-up", data.get("note"), now)

    held, continuing = [], []
    referrals = list(db.exec(select(Referral).where(
        Referral.journey_id == journey.id, Referral.status.in_(STEP_UP_CONTINUE_STATES))
        .order_by(Referral.id).with_for_update()).all())
    for referral in referrals:
        if data.get("hold_open_referrals") and referral.status == "in-progress":
            updated = db.execute(
                sa.update(Referral).where(Referral.id == referral.id,
                                          Referral.version == referral.version)
                .values(status="on-hold", reason_code="stepped-up",
                        reason_text="The statutory team has stepped the person up.",
                        version=referral.version + 1, updated_at=now))
            if updated.rowcount != 1:
                raise PreconditionFailed("A referral changed during the step-up. Try again.")
            event = ReferralEvent(referral_id=referral.id, action="hold",
                                  from_status="in-progress", to_status="on-hold",
                                  reason_code="stepped-up", actor_user_id=actor.user_id,
                                  actor_client_id=actor.client_id, at=now)
            db.add(event)
            audit.record(db, actor, "hold", "referral", referral.id, person_id=referral.person_id)
            db.flush()
            db.refresh(referral)
            notify_status_change(db, referral, event)
            held.append(referral.id)
            what = "put on hold"
        else:
            continuing.append(referral.id)
            what = "continues alongside"
        for address in _vcse_recipients(db, referral):
            enqueue_email(db, to=address, topic="journey.stepped-up",
                          subject=f"Stepdown: the statutory team has stepped up a person you "
                                  f"support; your referral {what}",
                          link_path=f"/referrals/{referral.id}")
    db.flush()
    return {"journey_id": journey.id, "journey_version": journey.version,
            "status": journey.status, "stepped_up_at": journey.stepped_up_at,
            "step_up_trigger": journey.step_up_trigger, "step_up_flag_id": journey.step_up_flag_id,
            "safety_net_ends": journey.safety_net_ends, "held_referral_ids": held,
            "continuing_referral_ids": continuing}
