"""Journey use cases: plan a step-down journey with its MDT, read it, record statutory discharge.

A journey is owned by one statutory team. Its status moves `planned` → `active` when the first
referral is accepted (`activate_on_first_accept`, called by the referral operations); statutory
discharge starts the safety net (`safety_net_ends` = discharge + `safety_net_days`, 90 by
default) without changing the status; the sweep finishes it when the net has elapsed.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, select

from models import (
    Journey,
    JourneyMember,
    Membership,
    Note,
    Offer,
    Organisation,
    Person,
    Referral,
    Team,
    User,
)
from models.flag_rules import safety_net_end
from service import clock
from service.audit import operations as audit
from service.audit.operations import record_denied
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from service.http import etag_of, require_if_match
from service.scoping import person_visible

OPEN_JOURNEY_STATES = ("planned", "active")


def display_name(person: Person) -> str:
    """How staff address the person: their preferred name if they gave one."""
    given = person.preferred_name or person.given_name
    return f"{given} {person.family_name}".strip()


def owns_team(actor: Principal, team_id: int, team_organisation_id: int | None) -> bool:
    """The caller works in this team (or, without a team, in its organisation)."""
    if actor.team_id is not None:
        return actor.team_id == team_id
    return team_organisation_id is not None and team_organisation_id == actor.organisation_id


def check_version(kind: str, record_id: int, version: int, expected_version: int | None) -> None:
    """If-Match for the API; pages pass the version they showed in a hidden field."""
    if expected_version is None:
        require_if_match(kind, record_id, version)
    elif expected_version != version:
        raise PreconditionFailed("The record has changed since you read it. Read it again.",
                                 headers={"ETag": etag_of(kind, record_id, version)})


def journey_etag(journey: Journey) -> str:
    return etag_of("journey", journey.id, journey.version)


# --- scope ------------------------------------------------------------------------------------

def journey_visible(db: Session, actor: Principal, journey: Journey) -> bool:
    if not person_visible(db, actor, journey.person_id):
        return False
    if actor.organisation_kind != "vcse":
        return True
    # A VCSE organisation sees the journeys its (sent) referrals belong to, nothing else.
    return bool(db.scalar(sa.select(sa.exists().where(
        Referral.journey_id == journey.id,
        Referral.receiving_organisation_id == actor.organisation_id,
        Referral.status != "draft",
    ))))


def require_journey(db: Session, actor: Principal, journey_id: int,
                    action: str = "read") -> Journey:
    """The journey if the caller may see it; otherwise 404 and a denied audit event."""
    journey = db.get(Journey, journey_id)
    if journey is None or not journey_visible(db, actor, journey):
        record_denied(actor, action, "journey", journey_id,
                      person_id=journey.person_id if journey is not None else None)
        raise NotFound("No such journey.")
    return journey


def _require_owner(db: Session, actor: Principal, journey: Journey) -> Team:
    team = db.get(Team, journey.team_id)
    if not owns_team(actor, journey.team_id, team.organisation_id if team else None):
        raise Forbidden("Only the journey's owning team can do this.")
    return team


# --- use cases --------------------------------------------------------------------------------

def _owning_team(db: Session, actor: Principal, team_id: int | None) -> Team:
    if actor.team_id is not None:
        if team_id not in (None, actor.team_id):
            raise Invalid("A journey is owned by your own team.",
                          errors={"team_id": ["Leave this out: journeys are owned by your team"]})
        team_id = actor.team_id
    if team_id is None:
        raise Invalid("Name the owning team.", errors={"team_id": ["Name the owning team"]})
    team = db.get(Team, team_id)
    if team is None or team.organisation_id != actor.organisation_id:
        raise Invalid("No such team in your organisation.",
                      errors={"team_id": ["No such team in your organisation"]})
    return team


def _active_user(db: Session, user_id: int) -> User | None:
    user = db.get(User, user_id)
    return user if user is not None and user.is_active else None


def create_journey(db: Session, actor: Principal, data: dict) -> Journey:
    """Plan a step-down journey for a person the caller's team can see."""
    actor.require(perm.JOURNEYS_WRITE)
    if actor.organisation_kind != "statutory":
        raise Forbidden("Journeys are owned by statutory teams.")
    team = _owning_team(db, actor, data.get("team_id"))
    today = clock.now().date()
    if data["review_due"] < today:
        raise Invalid("The review date is in the past.",
                      errors={"review_due": ["Enter a review date from today onwards"]})
    person = db.get(Person, data["person_id"])
    if person is None or not person_visible(db, actor, person.id):
        record_denied(actor, "create-journey", "person", data["person_id"],
                      person_id=person.id if person is not None else None)
        raise NotFound("No such person.")

    contact = _active_user(db, data["statutory_contact_user_id"])
    if contact is None or not db.scalar(sa.select(sa.exists().where(
        Membership.user_id == contact.id, Membership.organisation_id == team.organisation_id,
    ))):
        raise Invalid("The statutory contact must work for the owning organisation.",
                      errors={"statutory_contact_user_id": [
                          "Choose someone in your organisation"]})
    members = data.get("members") or []
    for index, member in enumerate(members):
        if _active_user(db, member["user_id"]) is None:
            raise Invalid("An MDT member is not a user of Stepdown.",
                          errors={"members": {str(index): {"user_id": ["No such user"]}}})

    now = clock.now()
    journey = Journey(
        person_id=person.id, team_id=team.id, statutory_contact_user_id=contact.id,
        status="planned", review_due=data["review_due"],
        safety_net_days=data.get("safety_net_days", 90), created_by_user_id=actor.user_id,
        created_at=now, updated_at=now,
    )
    db.add(journey)
    db.flush()
    for member in members:
        db.add(JourneyMember(journey_id=journey.id, user_id=member["user_id"], role=member["role"]))
    audit.record(db, actor, "create", "journey", journey.id, person_id=person.id)
    db.flush()
    return journey


def get_journey(db: Session, actor: Principal, journey_id: int) -> Journey:
    actor.require(perm.REFERRALS_READ)
    journey = require_journey(db, actor, journey_id)
    audit.record(db, actor, "read", "journey", journey.id, person_id=journey.person_id)
    return journey


def add_note(db: Session, actor: Principal, journey_id: int, data: dict) -> Note:
    """A note, or a client-voice note in the person's own words, about the whole journey
    (before or beside any referral). Statutory staff and peer workers who can see the journey;
    VCSE staff note on the referral to their organisation instead."""
    actor.require(perm.NOTES_WRITE)
    journey = require_journey(db, actor, journey_id, action="add-note")
    if actor.organisation_kind == "vcse":
        raise Forbidden("Add notes to the referral to your organisation.")
    note = Note(journey_id=journey.id, referral_id=None, author_user_id=actor.user_id,
                author_role=actor.role or "api-client",
                author_organisation_id=actor.organisation_id, kind=data.get("kind", "note"),
                text=data["text"], created_at=clock.now())
    db.add(note)
    db.flush()
    audit.record(db, actor, "add-note", "journey", journey.id, person_id=journey.person_id)
    return note


def discharge_journey(db: Session, actor: Principal, journey_id: int, data: dict,
                      expected_version: int | None = None) -> Journey:
    """Record statutory discharge: the safety net runs `safety_net_days` from that date."""
    actor.require(perm.JOURNEYS_WRITE)
    journey = require_journey(db, actor, journey_id, action="discharge")
    _require_owner(db, actor, journey)
    check_version("journey", journey.id, journey.version, expected_version)
    if journey.status not in OPEN_JOURNEY_STATES:
        raise Conflict(f"The journey is {journey.status}: discharge can't be recorded.")
    if journey.discharged_on is not None:
        raise Conflict("Statutory discharge is already recorded for this journey.")
    discharged_on: date = data["discharged_on"]
    if discharged_on < journey.created_at.date():
        raise Invalid("The discharge date is before the journey was planned.",
                      errors={"discharged_on": ["Enter a date on or after the journey started"]})
    days = data.get("safety_net_days")
    days = journey.safety_net_days if days is None else days
    now = clock.now()
    result = db.execute(
        sa.update(Journey)
        .where(Journey.id == journey.id, Journey.version == journey.version)
        .values(discharged_on=discharged_on, safety_net_days=days,
                safety_net_ends=safety_net_end(discharged_on, days),
                version=journey.version + 1, updated_at=now)
    )
    if result.rowcount != 1:
        raise PreconditionFailed("The journey has changed since you read it. Read it again.")
    audit.record(db, actor, "discharge", "journey", journey.id, person_id=journey.person_id)
    db.flush()
    return journey


def activation(journey_id) -> sa.Update:
    """`planned` → `active` for the journey `journey_id` names (a bind parameter, or an
    expression of a larger statement: see service.referrals.operations), at :now."""
    table = Journey.__table__
    return (sa.update(table)
            .where(table.c.id == journey_id, table.c.status == "planned")
            .values(status="active", version=table.c.version + 1,
                    updated_at=sa.bindparam("now", type_=table.c.updated_at.type)))


# Built once: every accept runs it. Callers do not hold the journey, so no session sync.
_ACTIVATE = activation(sa.bindparam("journey_id"))


def activate_on_first_accept(db: Session, journey_id: int) -> bool:
    """`planned` → `active` when a referral is first accepted (a no-op afterwards)."""
    db.flush()  # as autoflush would, before a statement on the session's connection
    result = db.connection().execute(_ACTIVATE, {"journey_id": journey_id, "now": clock.now()})
    return result.rowcount == 1


# --- representation ---------------------------------------------------------------------------

def journey_view(db: Session, actor: Principal, journey: Journey) -> dict:
    """The journey with its MDT and a summary of its referrals, shaped for the caller."""
    person = db.get(Person, journey.person_id)
    team = db.get(Team, journey.team_id)
    contact = db.get(User, journey.statutory_contact_user_id) \
        if journey.statutory_contact_user_id else None
    members = db.exec(
        select(JourneyMember.user_id, JourneyMember.role, User.display_name)
        .join(User, User.id == JourneyMember.user_id)
        .where(JourneyMember.journey_id == journey.id)
        .order_by(JourneyMember.role, User.display_name)
    ).all()
    query = (
        select(Referral.id, Referral.status, Referral.offer_id, Offer.name,
               Referral.receiving_organisation_id, Organisation.name, Referral.created_at,
               Referral.sent_at)
        .join(Offer, Offer.id == Referral.offer_id)
        .join(Organisation, Organisation.id == Referral.receiving_organisation_id)
        .where(Referral.journey_id == journey.id)
        .order_by(Referral.created_at, Referral.id)
    )
    if actor.organisation_kind == "vcse":  # never other organisations' referrals, nor drafts
        query = query.where(Referral.receiving_organisation_id == actor.organisation_id,
                            Referral.status != "draft")
    referrals = db.exec(query).all()
    return {
        "id": journey.id,
        "status": journey.status,
        "person": {"id": person.id, "name": display_name(person)},
        "team": {"id": team.id, "name": team.name, "organisation_id": team.organisation_id},
        "statutory_contact": {"id": contact.id, "name": contact.display_name} if contact else None,
        "review_due": journey.review_due,
        "discharged_on": journey.discharged_on,
        "safety_net_days": journey.safety_net_days,
        "safety_net_ends": journey.safety_net_ends,
        "stepped_up_at": journey.stepped_up_at,
        "step_up_trigger": journey.step_up_trigger,
        "created_at": journey.created_at,
        "updated_at": journey.updated_at,
        "version": journey.version,
        "members": [{"user_id": uid, "role": role, "name": name} for uid, role, name in members],
        "referrals": [
            {"id": rid, "status": status, "offer_id": offer_id, "offer_name": offer_name,
             "receiving_organisation_id": org_id, "receiving_organisation_name": org_name,
             "created_at": created_at, "sent_at": sent_at}
            for rid, status, offer_id, offer_name, org_id, org_name, created_at, sent_at
            in referrals
        ],
    }
