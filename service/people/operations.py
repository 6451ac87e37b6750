"""People and consent use cases.

Every read and change goes through `service.scoping.require_person` (404 when out of scope,
audited) and writes one audit event with the person's id. Responses are shaped per caller:
VCSE callers get the minimum necessary (DESIGN §5 rule 2).
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models import (
    Consent,
    Journey,
    Organisation,
    Person,
    PersonNeed,
    Responsibility,
    User,
)
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from service.flags.operations import raise_flag
from service.flows.facts import PERSON_FIELDS, mark_person_stale
from service.http import etag_of, require_if_match
from service.referrals.operations import cancel_open_referrals
from service.scoping import require_person

ABOUT_FIELDS = {"strengths": "about_strengths", "what_matters": "about_what_matters",
                "what_helps": "about_what_helps"}
# What a VCSE caller may see of a person: who they are and how to talk with them.
VCSE_FIELDS = ("id", "given_name", "family_name", "preferred_name", "pronouns",
               "communication_needs", "postcode_district", "about_me", "version")
_PERSON_FIELDS = ("nhs_number", "given_name", "family_name", "preferred_name", "pronouns",
                  "date_of_birth", "postcode_district", "borough", "communication_needs", "sex",
                  "ethnic_category")
_EARLIEST_BIRTH = date(1900, 1, 1)
_CLOCK_SKEW = timedelta(minutes=5)
_DUPLICATE = "A person with this NHS number is already registered"


# --- shaping -------------------------------------------------------------------------------

def _needs(db: Session, person_id: int) -> list[str]:
    return list(db.exec(select(PersonNeed.responsibility_code)
                        .where(PersonNeed.person_id == person_id)
                        .order_by(PersonNeed.responsibility_code)).all())


def is_full_view(actor: Principal) -> bool:
    """Statutory callers see the whole record; everyone else the minimum necessary."""
    return actor.organisation_kind == "statutory"


def shape_person(db: Session, actor: Principal, person: Person) -> dict:
    updated_by = (db.get(User, person.about_updated_by_user_id)
                  if person.about_updated_by_user_id else None)
    about = {key: getattr(person, column) for key, column in ABOUT_FIELDS.items()}
    about.update(updated_at=person.about_updated_at,
                 updated_by=updated_by.display_name if updated_by else None)
    full = person.model_dump()
    full["about_me"] = about
    if not is_full_view(actor):
        return {name: full[name] for name in VCSE_FIELDS}
    for column in ABOUT_FIELDS.values():
        full.pop(column)
    full.pop("about_updated_by_user_id")
    full.pop("about_updated_at")
    full["needs"] = _needs(db, person.id)
    return full


# --- validation helpers --------------------------------------------------------------------

def _check_needs(db: Session, codes: list[str]) -> list[str]:
    codes = sorted(set(codes))
    if codes:
        known = set(db.exec(select(Responsibility.code)
                            .where(Responsibility.code.in_(codes))).all())
        if set(codes) - known:
            raise Invalid("A need names an unknown responsibility.",
                          errors={"needs": ["Unknown responsibility code"]})
    return codes


def _check_birth_date(value: date | None) -> None:
    if value is None:
        return
    if value > clock.now().date():
        raise Invalid("The date of birth is in the future.",
                      errors={"date_of_birth": ["The date of birth must be in the past"]})
    if value < _EARLIEST_BIRTH:
        raise Invalid("The date of birth is too early.",
                      errors={"date_of_birth": ["The date of birth must be after 1900"]})


def _refuse_duplicate(db: Session, actor: Principal, nhs_number: str,
                      person_id: int | None = None) -> None:
    """409 if another person holds this NHS number; the number is never echoed, and the
    attempt is audited against the existing person (it reveals that they are registered)."""
    existing = db.exec(select(Person.id).where(Person.nhs_number == nhs_number)).first()
    if existing is not None and existing != person_id:
        audit.record_denied(actor, "register-duplicate", "person", existing, person_id=existing)
        raise Conflict(f"{_DUPLICATE}.", errors={"nhs_number": [_DUPLICATE]})


def _set_needs(db: Session, person: Person, codes: list[str]) -> None:
    for row in db.exec(select(PersonNeed).where(PersonNeed.person_id == person.id)).all():
        db.delete(row)
    db.flush()
    for code in codes:
        db.add(PersonNeed(person_id=person.id, responsibility_code=code))


def _apply_about_me(person: Person, actor: Principal, about: dict) -> None:
    changed = False
    for key, column in ABOUT_FIELDS.items():
        if key in about:
            setattr(person, column, about[key])
            changed = True
    if changed:
        person.about_updated_by_user_id = actor.user_id
        person.about_updated_at = clock.now()


def _flush_person(db: Session) -> None:
    """Flush; a parallel registration of the same NHS number becomes a 409."""
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"{_DUPLICATE}.", errors={"nhs_number": [_DUPLICATE]}) from None


# --- people --------------------------------------------------------------------------------

def register_person(db: Session, actor: Principal, data: dict) -> dict:
    actor.require(perm.PEOPLE_WRITE)
    if actor.organisation_kind != "statutory":
        raise Forbidden("People are registered by their statutory team.")
    _check_birth_date(data["date_of_birth"])
    needs = _check_needs(db, data.pop("needs", []) or [])
    about = data.pop("about_me", None) or {}
    if about and not actor.can(perm.ABOUT_ME_WRITE):
        raise Forbidden("You do not have permission to record About me.")
    _refuse_duplicate(db, actor, data["nhs_number"])
    now = clock.now()
    person = Person(created_by_organisation_id=actor.organisation_id, created_at=now,
                    updated_at=now, **{k: v for k, v in data.items() if k in _PERSON_FIELDS})
    _apply_about_me(person, actor, about)
    db.add(person)
    _flush_person(db)
    _set_needs(db, person, needs)
    db.flush()
    audit.record(db, actor, "create", "person", person.id, person_id=person.id)
    return shape_person(db, actor, person)


def get_person(db: Session, actor: Principal, person_id: int) -> dict:
    actor.require(perm.PEOPLE_READ)
    person = require_person(db, actor, person_id, "read")
    audit.record(db, actor, "read", "person", person.id, person_id=person.id)
    return shape_person(db, actor, person)


def search_people(db: Session, actor: Principal, nhs_number: str) -> list[dict]:
    """Find a person by NHS number, scoped like any read: nobody learns of a person they
    may not see (an empty list, and a denied audit event against that person)."""
    actor.require(perm.PEOPLE_READ)
    person_id = db.exec(select(Person.id).where(Person.nhs_number == nhs_number)).first()
    if person_id is None:
        audit.record(db, actor, "search", "person")
        return []
    try:
        person = require_person(db, actor, person_id, "search")
    except NotFound:
        return []
    audit.record(db, actor, "search", "person", person.id, person_id=person.id)
    return [shape_person(db, actor, person)]


def _lock_person(db: Session, person_id: int) -> None:
    """Serialise changes of one person (PostgreSQL row lock; SQLite serialises writers)."""
    db.execute(sa.select(Person.id).where(Person.id == person_id).with_for_update())


def check_version(kind: str, record_id: int, version: int, expected: int | None) -> None:
    """The caller must name the version they read: the request's If-Match header (API), or
    `expected` (pages send the version they showed). Stale → 412, missing header → 428."""
    if expected is None:
        require_if_match(kind, record_id, version)
    elif expected != version:
        raise PreconditionFailed("The record has changed since you read it. Read it again.",
                                 headers={"ETag": etag_of(kind, record_id, version)})


def update_person(db: Session, actor: Principal, person_id: int, data: dict, *,
                  expected_version: int | None = None) -> dict:
    """Change a person: About me needs people:about-me, every other field people:write.

    The version check uses If-Match unless `expected_version` is given (see check_version)."""
    about = data.pop("about_me", None)
    if about is not None:
        actor.require(perm.ABOUT_ME_WRITE)
    if data:
        actor.require(perm.PEOPLE_WRITE)
    _lock_person(db, person_id)
    person = require_person(db, actor, person_id, "update")
    check_version("person", person.id, person.version, expected_version)
    if "date_of_birth" in data:
        _check_birth_date(data["date_of_birth"])
    if "needs" in data:
        _set_needs(db, person, _check_needs(db, data.pop("needs") or []))
    if data.get("nhs_number") and data["nhs_number"] != person.nhs_number:
        _refuse_duplicate(db, actor, data["nhs_number"], person_id=person.id)
    for name, value in data.items():
        if name in _PERSON_FIELDS:
            setattr(person, name, value)
    if about:
        _apply_about_me(person, actor, about)
    person.version += 1
    person.updated_at = clock.now()
    db.add(person)
    _flush_person(db)
    if PERSON_FIELDS & data.keys():
        mark_person_stale(db, person.id)
    audit.record(db, actor, "update", "person", person.id, person_id=person.id)
    return shape_person(db, actor, person)


# --- consents ------------------------------------------------------------------------------

def _shape_consents(db: Session, consents: list[Consent]) -> list[dict]:
    now = clock.now()
    org_ids = {c.organisation_id for c in consents}
    user_ids = {c.recorded_by_user_id for c in consents if c.recorded_by_user_id}
    orgs = dict(db.exec(select(Organisation.id, Organisation.name)
                        .where(Organisation.id.in_(org_ids))).all()) if org_ids else {}
    users = dict(db.exec(select(User.id, User.display_name)
                         .where(User.id.in_(user_ids))).all()) if user_ids else {}
    shaped = []
    for consent in consents:
        row = consent.model_dump()
        row.update(status=consent.status(now), organisation_name=orgs.get(consent.organisation_id),
                   recorded_by=users.get(consent.recorded_by_user_id))
        shaped.append(row)
    return shaped


def record_consent(db: Session, actor: Principal, person_id: int, data: dict) -> dict:
    actor.require(perm.CONSENT_WRITE)
    person = require_person(db, actor, person_id, "record-consent")
    now = clock.now()
    if db.get(Organisation, data["organisation_id"]) is None:
        raise Invalid("The consent names an unknown organisation.",
                      errors={"organisation_id": ["No such organisation"]})
    if data["given_at"] > now + _CLOCK_SKEW:
        raise Invalid("Consent cannot be given in the future.",
                      errors={"given_at": ["The date consent was given must not be in the future"]})
    if data.get("expires_at") is not None and data["expires_at"] <= now:
        raise Invalid("The consent has already expired.",
                      errors={"expires_at": ["The expiry must be in the future"]})
    consent = Consent(person_id=person.id, recorded_by_user_id=actor.user_id, created_at=now,
                      **data)
    db.add(consent)
    db.flush()
    audit.record(db, actor, "create", "consent", consent.id, person_id=person.id)
    return _shape_consents(db, [consent])[0]


def list_consents(db: Session, actor: Principal, person_id: int, *, limit: int,
                  after: int | None) -> tuple[list[dict], int | None]:
    """The person's consents; a VCSE caller sees only those naming their own organisation."""
    actor.require(perm.PEOPLE_READ)
    person = require_person(db, actor, person_id, "read-consents")
    query = (select(Consent).where(Consent.person_id == person.id)
             .order_by(Consent.id).limit(limit + 1))
    if not is_full_view(actor):
        query = query.where(Consent.organisation_id == actor.organisation_id)
    if after is not None:
        query = query.where(Consent.id > after)
    rows = list(db.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    audit.record(db, actor, "read", "consent", None, person_id=person.id)
    return _shape_consents(db, rows), (rows[-1].id if more else None)


def consent_withdrawn_on(db: Session, person_id: int, organisation_id: int):
    """When the person last withdrew consent for this organisation (for tombstones), or None."""
    return db.exec(select(sa.func.max(Consent.withdrawn_at))
                   .where(Consent.person_id == person_id,
                          Consent.organisation_id == organisation_id)).first()


def _raise_consent_flags(db: Session, actor: Principal, person_id: int,
                         organisation: Organisation, cancelled: int) -> None:
    """A flag tells each active journey's statutory team to re-plan."""
    journeys = list(db.exec(select(Journey).where(Journey.person_id == person_id,
                                                  Journey.status == "active")
                            .order_by(Journey.id)).all())
    description = (f"Consent to share with {organisation.name} was withdrawn; "
                   f"{cancelled} open referral(s) to them cancelled. Re-plan the journey.")
    for journey in journeys:
        raise_flag(db, trigger="consent-withdrawn", journey=journey, referral=None,
                   urgency="urgent", raised_by=actor, description=description)


def withdraw_consent(db: Session, actor: Principal, consent_id: int, reason: str) -> dict:
    """Withdrawal takes effect at once, in this transaction: open referrals to the organisation
    are cancelled (reason consent-withdrawn, one event each), its users lose the person
    (scoping follows consent), and each active journey's team gets an urgent flag."""
    actor.require(perm.CONSENT_WRITE)
    consent = db.exec(select(Consent).where(Consent.id == consent_id).with_for_update()).first()
    if consent is None:
        audit.record_denied(actor, "withdraw", "consent", consent_id)
        raise NotFound("No such consent.")
    require_person(db, actor, consent.person_id, "withdraw-consent")
    if consent.withdrawn_at is not None:
        raise Conflict("This consent has already been withdrawn.")
    now = clock.now()
    consent.withdrawn_at = now
    consent.withdrawn_by_user_id = actor.user_id
    consent.withdrawal_reason = reason
    db.add(consent)
    cancelled = cancel_open_referrals(db, actor, consent.person_id, consent.organisation_id,
                                      reason_code="consent-withdrawn")
    db.flush()
    _raise_consent_flags(db, actor, consent.person_id,
                         db.get(Organisation, consent.organisation_id), len(cancelled))
    db.flush()
    audit.record(db, actor, "withdraw", "consent", consent.id, person_id=consent.person_id)
    shaped = _shape_consents(db, [consent])[0]
    shaped["cancelled_referral_ids"] = [r.id for r in cancelled]
    return shaped
