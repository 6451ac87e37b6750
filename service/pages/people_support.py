"""Helpers shared by the care coordinator and peer worker pages (people, journeys, refer flow).

Pages call the area operations; the few reads and writes here exist only where no operation
covers what a page needs yet.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from models import (
    AuditEvent,
    Consent,
    Flag,
    Membership,
    Note,
    Organisation,
    Responsibility,
    User,
)
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal

LONDON = ZoneInfo("Europe/London")

# marshmallow's generic messages, replaced by the question's own wording on pages.
_GENERIC = ("Missing data for required field.", "Not a valid integer.", "Not a valid date.",
            "Field may not be null.", "Not a valid datetime.", "Not a valid string.",
            "Not a valid boolean.", "Must be one of", "Shorter than minimum length",
            "Length must be between 1", "Not a valid aware datetime.", "Must be greater than",
            "Must be less than", "Longer than maximum length", "Unknown field.",
            "Give the flag or the trigger")
# marshmallow's Length messages; on a page (blanks are left out) they mean the text is too long.
_TOO_LONG = re.compile(r"^(?:Length must be between 1 and|Longer than maximum length) (\d+)\.$")

ROLE_LABELS = {
    "care_coordinator": "Care coordinator",
    "duty_clinician": "Duty clinician",
    "peer_worker": "Peer worker",
    "vcse_worker": "VCSE worker",
    "vcse_manager": "VCSE manager",
    "contract_manager": "Contract manager",
    "org_admin": "Organisation admin",
    "api-client": "Connected system",
}
MDT_ROLE_FOR = {
    "care_coordinator": "care-coordinator",
    "peer_worker": "peer-worker",
    "vcse_worker": "vcse-worker",
    "vcse_manager": "vcse-worker",
}
MDT_ROLE_LABELS = {
    "care-coordinator": "Care coordinator",
    "peer-worker": "Peer worker",
    "vcse-worker": "VCSE worker",
    "statutory-contact": "Named statutory contact",
    "other": "MDT member",
}
REFERRAL_STATUS = {  # label, tag colour
    "draft": ("Draft, not sent", "grey"),
    "requested": ("Sent, awaiting reply", "blue"),
    "accepted": ("Accepted", "green"),
    "in-progress": ("In progress", "aqua-green"),
    "on-hold": ("On hold", "yellow"),
    "completed": ("Completed", "white"),
    "rejected": ("Declined", "red"),
    "cancelled": ("Cancelled", "grey"),
    "failed": ("Could not engage", "orange"),
}
JOURNEY_STATUS = {
    "planned": ("Planned", "blue"),
    "active": ("Active", "green"),
    "finished": ("Finished", "grey"),
    "cancelled": ("Cancelled", "grey"),
}
CONSENT_STATUS = {"active": ("Active", "green"), "withdrawn": ("Withdrawn", "red"),
                  "expired": ("Expired", "grey")}
CAPACITY = {"capacity": ("Has capacity", "green"), "waitlist": ("Waiting list", "yellow"),
            "no-capacity": ("No capacity", "red")}
EVENT_LABELS = {
    "create": "Draft started", "send": "Sent", "accept": "Accepted", "decline": "Declined",
    "start": "Started", "hold": "Put on hold", "resume": "Resumed", "complete": "Completed",
    "fail": "Closed: could not engage", "cancel": "Cancelled",
}
CONTACT_LABELS = {"attended": "Contact: attended", "did-not-attend": "Contact: did not attend",
                  "could-not-contact": "Contact: could not contact"}
REASON_LABELS = {
    "no-capacity": "No capacity", "not-eligible": "Not eligible",
    "needs-specialist-support": "Needs specialist support",
    "person-declined": "The person declined", "could-not-contact": "Could not contact",
    "returned-with-advice": "Returned with advice", "other": "Other reason",
    "consent-withdrawn": "Consent withdrawn", "no-longer-needed": "No longer needed",
    "sent-in-error": "Sent in error", "person-unwell": "The person is unwell",
    "person-request": "At the person's request", "stepped-up": "Stepped up to the statutory team",
    "awaiting-information": "Awaiting information", "could-not-engage": "Could not engage",
}
ART6_LABELS = {
    "consent": "Consent (article 6(1)(a))",
    "contract": "Contract (article 6(1)(b))",
    "legal-obligation": "Legal obligation (article 6(1)(c))",
    "vital-interests": "Vital interests (article 6(1)(d))",
    "public-task": "Public task (article 6(1)(e))",
    "legitimate-interests": "Legitimate interests (article 6(1)(f))",
}
ART9_LABELS = {
    "explicit-consent": "Explicit consent (article 9(2)(a))",
    "employment-social-security": "Employment and social security (article 9(2)(b))",
    "vital-interests": "Vital interests (article 9(2)(c))",
    "not-for-profit-bodies": "Not-for-profit bodies (article 9(2)(d))",
    "made-public": "Made public by the person (article 9(2)(e))",
    "legal-claims": "Legal claims (article 9(2)(f))",
    "substantial-public-interest": "Substantial public interest (article 9(2)(g))",
    "health-social-care": "Health or social care (article 9(2)(h))",
    "public-health": "Public health (article 9(2)(i))",
    "archiving-research": "Archiving and research (article 9(2)(j))",
}
URGENCY_LABELS = {"emergency": "Emergency", "urgent": "Urgent", "routine": "Routine"}


# --- forms ------------------------------------------------------------------------------------

def friendly(errors: dict[str, list[str]], wording: dict[str, str]) -> dict[str, list[str]]:
    """Replace marshmallow's generic messages with the question's own ("Enter the review
    date"); messages written for people (e.g. the NHS number check) are kept. Errors are
    ordered as the `wording` keys (the order of the questions), then the rest."""
    shown: dict[str, list[str]] = {}
    for name, messages in errors.items():
        out = []
        for message in messages:
            if name in wording and any(message.startswith(g) for g in _GENERIC):
                too_long = _TOO_LONG.match(message)
                message = wording[name]
                if too_long and "characters or fewer" not in message:
                    # "Enter the crisis plan" alone would not say what is wrong.
                    message = f"{message} in {too_long[1]} characters or fewer"
            if message not in out:
                out.append(message)
        shown[name] = out
    order = list(wording)
    return dict(sorted(shown.items(),
                       key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def as_ints(values: dict, *names: str) -> dict:
    """Form fields that the schemas read as strict integers: digits become ints, anything else
    stays as typed so the schema reports it."""
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and value.isdigit():
            values[name] = int(value)
    return values


def form_int(form, name: str) -> int | None:
    value = (form.get(name) or "").strip()
    return int(value) if value.isdigit() else None


# --- display ----------------------------------------------------------------------------------

def nhs_number_display(number: str | None) -> str:
    if not number or len(number) != 10:
        return number or ""
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def today() -> date:
    return clock.now().astimezone(LONDON).date()


def age_on(born: date | None, on: date) -> int | None:
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def long_date(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.astimezone(LONDON) if value.tzinfo else value
        value = value.date()
    return f"{value.day} {value.strftime('%B %Y')}"


def long_datetime(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        local = value.astimezone(LONDON) if value.tzinfo else value
        hour = local.strftime("%I").lstrip("0") or "12"
        return f"{local.day} {local.strftime('%B %Y')} at {hour}:{local.strftime('%M')}" \
               f"{local.strftime('%p').lower()}"
    return long_date(value)


def responsibilities(db: Session) -> dict[str, tuple[str, str]]:
    """code -> (name, scope): the alliance vocabulary (not personal data)."""
    return {code: (name, scope) for code, name, scope in db.exec(
        select(Responsibility.code, Responsibility.name, Responsibility.scope)
        .order_by(Responsibility.name)).all()}


# --- people around the person -----------------------------------------------------------------

def about_me_role(db: Session, person_id: int, user_id: int | None,
                  updated_at: datetime | None) -> str | None:
    """The role the About me author held when they last changed it (from their audit event)."""
    if user_id is None:
        return None
    query = (select(AuditEvent.actor_role)
             .where(AuditEvent.person_id == person_id, AuditEvent.actor_user_id == user_id,
                    AuditEvent.record_type == "person",
                    AuditEvent.action.in_(("update", "create")),
                    AuditEvent.outcome == "allowed")
             .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(1))
    if updated_at is not None:
        query = query.where(AuditEvent.at <= updated_at)
    role = db.exec(query).first()
    if role is None:  # e.g. recorded by the demo loader: the author's first role
        role = db.exec(select(Membership.role).where(Membership.user_id == user_id)
                       .order_by(Membership.id).limit(1)).first()
    return role


def staff_options(db: Session, actor: Principal, person_id: int | None = None
                  ) -> list[dict]:
    """Who can be named on a journey: active staff of the caller's organisation, and workers of
    VCSE organisations that the person's active consent names. One row per user."""
    now = clock.now()
    org_ids = [actor.organisation_id]
    if person_id is not None:
        org_ids += list(db.exec(select(Consent.organisation_id).where(
            Consent.person_id == person_id, Consent.withdrawn_at.is_(None),
            sa.or_(Consent.expires_at.is_(None), Consent.expires_at > now))).all())
    rows = db.exec(
        select(User.id, User.display_name, Membership.role, Organisation.id, Organisation.name,
               Organisation.kind)
        .join(Membership, Membership.user_id == User.id)
        .join(Organisation, Organisation.id == Membership.organisation_id)
        .where(User.is_active.is_(True), Membership.organisation_id.in_(org_ids),
               Membership.role.in_(("care_coordinator", "peer_worker", "duty_clinician",
                                    "vcse_worker", "vcse_manager")))
        .order_by(Organisation.kind, User.display_name, Membership.id)
    ).all()
    seen: dict[int, dict] = {}
    for user_id, name, role, org_id, org_name, kind in rows:
        if user_id in seen:
            continue
        seen[user_id] = {"id": user_id, "name": name, "role": role,
                         "role_label": ROLE_LABELS.get(role, role), "organisation_id": org_id,
                         "organisation_name": org_name, "kind": kind,
                         "mdt_role": MDT_ROLE_FOR.get(role, "other")}
    return list(seen.values())


def person_flags(db: Session, actor: Principal, person_id: int) -> list[Flag]:
    """Unresolved flags about the person routed to the caller's team (flags:read only)."""
    if not actor.can(perm.FLAGS_READ):
        return []
    from service.flags.operations import _my_teams_clause

    flags = list(db.exec(select(Flag).where(Flag.person_id == person_id,
                                            Flag.status != "resolved", _my_teams_clause(actor))
                         .order_by(Flag.raised_at.desc(), Flag.id.desc())).all())
    for flag in flags:
        audit.record(db, actor, "read", "flag", flag.id, person_id=person_id)
    return flags


def journey_notes(db: Session, journey_ids: list[int], *, limit: int, offset: int
                  ) -> tuple[list[Note], int]:
    """Notes about these journeys (and their referrals), newest first, with the total."""
    if not journey_ids:
        return [], 0
    where = Note.journey_id.in_(journey_ids)
    total = db.scalar(sa.select(sa.func.count()).select_from(Note).where(where)) or 0
    rows = list(db.exec(select(Note).where(where)
                        .order_by(Note.created_at.desc(), Note.id.desc())
                        .offset(offset).limit(limit)).all())
    return rows, total
