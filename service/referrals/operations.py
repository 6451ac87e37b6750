"""Referral use cases: create with the handover, act on it through its lifecycle, record contacts
and notes, assign, and list the inbox (VCSE) and outbox (statutory).

- Who may act: the referring team sends and cancels (perm.REFERRALS_REFER); the receiving VCSE
  organisation accepts, declines, starts, holds, resumes, completes and fails
  (perm.REFERRALS_DECIDE). Out-of-scope referrals are 404 (`service.scoping.require_referral`).
- Concurrency: every change names the version it saw (If-Match), and the row is changed with a
  conditional `UPDATE … WHERE id = :id AND version = :v`; no row → 412. Two parallel accepts
  cannot both win, and exactly one referral event is written.
- Every change writes one `ReferralEvent` (append-only) and one audit event with the person's id,
  then calls `service.referrals.hooks.STATUS_LISTENERS`.
- `first_contact_at` is the first *attended* contact: DESIGN's "no first contact within 10
  working days of acceptance" means nobody has actually met the person; did-not-attend and
  could-not-contact are attempts, and three in a row raise their own flag.
- Contacts and notes are append-only sub-records: they do not change the referral's version
  (its ETag covers status, assignment and decision fields).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, load_only, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, select

from models import (
    AuditEvent,
    Consent,
    Contact,
    Journey,
    Membership,
    Note,
    Offer,
    Organisation,
    OrganisationResponsibility,
    Person,
    PersonNeed,
    Referral,
    ReferralEvent,
    Responsibility,
    Team,
    User,
)
from models.flag_rules import MISSED_CONTACT_RUN, missed_contacts_run, responsibility_gap
from models.referral_lifecycle import (
    ACTIONS,
    REASON_REQUIRED_FOR,
    IllegalTransition,
    ReasonRequired,
    UnknownReason,
    allowed_actions,
    check_reason,
    next_status,
)
from models.types import UTCDateTime
from models.vocab import OPEN_REFERRAL_STATES
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.principal import Principal
from service.errors import Conflict, Forbidden, Invalid, PreconditionFailed
from service.http import etag_of
from service.jobs import outbox
from service.journeys.operations import (
    activate_on_first_accept,
    activation,
    check_version,
    display_name,
    owns_team,
    require_journey,
)
from service.referrals.hooks import STATUS_READS, keep_reads, notify_status_change
from service.scoping import (
    FULL,
    TOMBSTONE,
    _team_clause,
    consent_active_clause,
    require_referral,
    require_referral_with,
)

REFERRER_ACTIONS = frozenset({"send", "cancel"})
RECEIVER_ACTIONS = frozenset(ACTIONS) - REFERRER_ACTIONS
ONE_OPEN_RULE = "one-open-referral-per-person-per-offer"
CONTACT_STATES = ("accepted", "in-progress", "on-hold")
_ASSIGNABLE_ROLES = ("vcse_worker", "vcse_manager")


def referral_etag(referral: Referral) -> str:
    return etag_of("referral", referral.id, referral.version)


# --- sides ------------------------------------------------------------------------------------

def _is_referrer(db: Session, actor: Principal, referral: Referral) -> bool:
    if actor.team_id is not None:
        return actor.team_id == referral.referring_team_id
    team = db.get(Team, referral.referring_team_id)
    return owns_team(actor, referral.referring_team_id, team.organisation_id if team else None)


def _is_receiver(actor: Principal, referral: Referral) -> bool:
    return (actor.organisation_kind == "vcse"
            and actor.organisation_id == referral.receiving_organisation_id)


def _require_side(db: Session, actor: Principal, referral: Referral, action: str) -> None:
    if action in REFERRER_ACTIONS:
        actor.require(perm.REFERRALS_REFER)
        if not _is_referrer(db, actor, referral):
            raise Forbidden("Only the referring team can do this.")
    else:
        actor.require(perm.REFERRALS_DECIDE)
        if not _is_receiver(actor, referral):
            raise Forbidden("Only the receiving organisation can do this.")


def actions_for(db: Session, actor: Principal, referral: Referral) -> list[str]:
    """The lifecycle's allowed actions that this caller may take now (for buttons)."""
    possible = allowed_actions(referral.status)
    refer = (any(a in REFERRER_ACTIONS for a in possible) and actor.can(perm.REFERRALS_REFER)
             and _is_referrer(db, actor, referral))
    decide = actor.can(perm.REFERRALS_DECIDE) and _is_receiver(actor, referral)
    return [a for a in possible if (refer if a in REFERRER_ACTIONS else decide)]


# --- helpers ----------------------------------------------------------------------------------

def about_me_snapshot(person: Person | _SendContext) -> str | None:
    """About me, in the person's own words, as it stands when the referral is sent (from the
    person, or the three columns read for sending)."""
    parts = (("My strengths", person.about_strengths),
             ("What matters to me", person.about_what_matters),
             ("What helps me", person.about_what_helps))
    text = "\n\n".join(f"{title}\n{body.strip()}" for title, body in parts
                       if body and body.strip())
    return text or None


def _raise_flag(db: Session, **kwargs):
    from service.flags.operations import raise_flag

    return raise_flag(db, **kwargs)


def _enqueue_email(db: Session, **kwargs) -> None:
    from service.jobs.outbox import enqueue_email

    enqueue_email(db, **kwargs)


_INSERT_EVENT = sa.insert(ReferralEvent.__table__).returning(ReferralEvent.__table__.c.id)


def _event_values(actor: Principal | None, referral_id: int, action: str,
                  from_status: str | None, to_status: str, reason_code: str | None,
                  reason_text: str | None, at: datetime) -> dict:
    return {"referral_id": referral_id, "action": action, "from_status": from_status,
            "to_status": to_status, "reason_code": reason_code, "reason_text": reason_text,
            "actor_user_id": actor.user_id if actor else None,
            "actor_client_id": actor.client_id if actor else None, "at": at}


def _write_event(db: Session, actor: Principal | None, referral_id: int, action: str,
                 from_status: str | None, to_status: str, reason_code: str | None,
                 reason_text: str | None, at: datetime) -> ReferralEvent:
    """Append the event at once, on the session's connection (one INSERT, no unit of work);
    the returned object, not in the session, is what status listeners are given."""
    values = _event_values(actor, referral_id, action, from_status, to_status, reason_code,
                           reason_text, at)
    db.flush()  # the referral (and anything else pending) is written first, as autoflush would
    event_id = db.connection().execute(_INSERT_EVENT, values).scalar_one()
    return ReferralEvent(id=event_id, **values)


# Built once (SET takes the columns each call passes); run on the session's connection, in the
# request's transaction, without the ORM's bulk-update machinery: the object is updated below.
_REFERRAL_IF_VERSION = (sa.update(Referral.__table__)
                        .where(Referral.__table__.c.id == sa.bindparam("expected_id"),
                               Referral.__table__.c.version == sa.bindparam("expected_version")))


def _if_version(db: Session, referral: Referral, statement, values: dict,
                params: dict | None = None,
                found: Callable[[sa.CursorResult], Any] = lambda r: r.rowcount == 1 or None):
    """Run `statement`, which sets `values` on the referral only while its version is still
    the one we read (:expected_id, :expected_version), adding the next version and the mark for
    the flows report (service.flows.facts). `found(result)` says what it changed (None: nobody
    changed, as the referral changed since we read it: 412). The object then holds the values
    as committed, not as pending changes."""
    values = {**values, "version": referral.version + 1, "flows_stale": True}
    db.flush()  # what the session holds reaches the database first, as autoflush would do
    outcome = found(db.connection().execute(statement, {
        "expected_id": referral.id, "expected_version": referral.version, **values,
        **(params or {})}))
    if outcome is None:
        raise PreconditionFailed("The referral has changed since you read it. Read it again.")
    for name, value in values.items():
        set_committed_value(referral, name, value)
    return outcome


def _conditional_update(db: Session, referral: Referral, **values) -> None:
    """Change the row only if nobody changed it since we read it (else 412)."""
    _if_version(db, referral, _REFERRAL_IF_VERSION, values)


def _audited_row(table: sa.Table, prefix: str, source, **columns) -> sa.Insert:
    """INSERT INTO table SELECT <each column but id: `columns` given, else a bind parameter>
    FROM source: one row per row of `source` (none when it is empty)."""
    names = [c.name for c in table.c if c.name != "id"]
    row = sa.select(*[columns[n] if n in columns
                      else sa.bindparam(prefix + n, type_=table.c[n].type) for n in names])
    return sa.insert(table).from_select(names, row.select_from(source))


@functools.cache
def _change_statement(columns: tuple[str, ...], activate_journey: bool, email_inboxes: bool,
                      reads: tuple[str, ...]) -> sa.Select:
    """PostgreSQL: the conditional update, its referral event and its audit row (and the
    journey's activation on an accept, the emails to the receiving organisation's team inboxes
    on a send) in one statement (data-modifying CTEs); one row, the event's id and what the
    status listeners read (`reads`, service.referrals.hooks.STATUS_READS), or no row when the
    version did not match (then nothing was written)."""
    table = Referral.__table__
    changed = (sa.update(table)
               .where(table.c.id == sa.bindparam("expected_id"),
                      table.c.version == sa.bindparam("expected_version"))
               .values({name: sa.bindparam(name, type_=table.c[name].type) for name in columns})
               .returning(table.c.id, table.c.journey_id, table.c.referring_team_id,
                          table.c.receiving_organisation_id)
               .cte("changed"))
    event_table = ReferralEvent.__table__
    event = (_audited_row(event_table, "event_", changed).returning(event_table.c.id)
             .cte("event"))
    audited = _audited_row(AuditEvent.__table__, "audit_", changed).cte("audited")
    read_columns = [STATUS_READS[name](changed.c.referring_team_id,
                                       changed.c.receiving_organisation_id).label(name)
                    for name in reads]
    statement = (sa.select(event.c.id, *read_columns).select_from(event)
                 .join(changed, sa.true()).add_cte(audited))
    if activate_journey:
        # The journey's id is a parameter, so the planner finds it by its key (taken from the
        # changed row, the planner may scan every planned journey by status instead).
        activated = (activation(sa.bindparam("activate_journey_id"))
                     .where(sa.exists(changed.select())))
        statement = statement.add_cte(activated.cte("activated"))
    if email_inboxes:
        emailed = _team_inboxes(sa.exists(changed.select()), prefix="email_")
        statement = statement.add_cte(emailed.cte("emailed"))
    return statement


def _change(db: Session, actor: Principal | None, referral: Referral, action: str,
            to_status: str, reason_code: str | None, reason_text: str | None, at: datetime,
            values: dict, inbox_email: dict | None = None) -> ReferralEvent:
    """A status change: the conditional update (412 when the referral changed since it was
    read), its `ReferralEvent`, its audit event, on an accept the journey's activation
    (`planned` → `active`), and with `inbox_email` (topic, subject, link_path) that email to
    each team inbox of the receiving organisation. One statement on PostgreSQL, which also
    reads what the status listeners asked for (`STATUS_READS`); three to five on SQLite; either
    way all or nothing. The returned event is what status listeners get."""
    from_status = referral.status
    activate_journey = action == "accept"
    if db.get_bind().dialect.name != "postgresql":
        _conditional_update(db, referral, **values)
        event = _write_event(db, actor, referral.id, action, from_status, to_status,
                             reason_code, reason_text, at)
        audit.record(db, actor, action, "referral", referral.id, person_id=referral.person_id)
        if activate_journey:
            activate_on_first_accept(db, referral.journey_id)
        if inbox_email:
            outbox.enqueue_emails(db, _EMAIL_TEAM_INBOXES, {
                "organisation_id": referral.receiving_organisation_id}, now=at, **inbox_email)
        return event
    event_values = _event_values(actor, referral.id, action, from_status, to_status,
                                 reason_code, reason_text, at)
    audit_values = audit.allowed_row(actor, action, "referral", referral.id,
                                     person_id=referral.person_id)
    reads = tuple(sorted(STATUS_READS))
    # The statement sets `values` and the two columns _if_version adds.
    statement = _change_statement(tuple(sorted({*values, "version", "flows_stale"})),
                                  activate_journey, bool(inbox_email), reads)
    emails = ({"email_organisation_id": referral.receiving_organisation_id,
               **outbox.email_params(now=at, prefix="email_", **inbox_email)}
              if inbox_email else {})
    row = _if_version(db, referral, statement, values, {
        "now": at, "activate_journey_id": referral.journey_id, **emails,
        **_prefixed("event_", event_values), **_prefixed("audit_", audit_values)},
        found=lambda result: result.one_or_none())
    keep_reads(db, referral.id, dict(zip(reads, row[1:], strict=True)))
    return ReferralEvent(id=row[0], **event_values)


def _prefixed(prefix: str, values: dict) -> dict:
    return {prefix + name: value for name, value in values.items()}


def _team_inboxes(*conditions, prefix: str = "") -> sa.Insert:
    """An email to each team inbox of the organisation :{prefix}organisation_id."""
    organisation_id = sa.bindparam(f"{prefix}organisation_id")
    return outbox.emails_to(sa.select(Team.email)
                            .where(Team.organisation_id == organisation_id,
                                   Team.email.is_not(None), *conditions), prefix=prefix)


_EMAIL_TEAM_INBOXES = _team_inboxes()


# --- create -----------------------------------------------------------------------------------

HANDOVER_FIELDS = ("goals", "relapse_signs", "crisis_plan", "risk_summary", "contact_in_hours",
                   "contact_out_of_hours")


def _open_rule_conflict() -> Conflict:
    return Conflict("This person already has an open referral to this offer.",
                    rule=ONE_OPEN_RULE,
                    errors={"offer_id": ["An open referral to this offer exists for this person"]})


# The hot paths' statements are built once, with bind parameters: building a statement costs
# more Python than running it.
# Only the columns creating and answering use (the person's whole row: the response shows it);
# another attribute is loaded when something reads it.
_REFER_CONTEXT = (select(Journey, Team, Person, Offer, Organisation)
                  .join(Team, Team.id == Journey.team_id)
                  .join(Person, Person.id == Journey.person_id)
                  .outerjoin(Offer, Offer.id == sa.bindparam("offer_id"))
                  .outerjoin(Organisation, Organisation.id == Offer.organisation_id)
                  .where(Journey.id == sa.bindparam("journey_id"))
                  .options(load_only(Journey.person_id, Journey.team_id, Journey.status),
                           load_only(Team.name, Team.organisation_id),
                           load_only(Offer.name, Offer.status, Offer.organisation_id),
                           load_only(Organisation.name, Organisation.kind)))


def _journey_to_refer_from(db: Session, actor: Principal, journey_id: int,
                           offer_id: int) -> tuple[Journey, Offer | None]:
    """The journey if the caller's team owns it (404, audited, when out of scope; else 403),
    and the offer (None if there is no such offer).

    One query in the usual case, which also brings the referring team, the person and the
    receiving organisation into the session for the response: a statutory caller owning the
    journey's team sees its person by that alone (the first rule of `visible_people_clause`), so
    the wider scope check is only needed to tell 404 from 403 when it does not own it.
    """
    row = db.exec(_REFER_CONTEXT, params={"journey_id": journey_id, "offer_id": offer_id}).first()
    if (row is not None and actor.organisation_kind != "vcse"
            and owns_team(actor, row[0].team_id, row[1].organisation_id)):
        db.info.setdefault("stepdown.kept", []).extend(r for r in row if r is not None)
        return row[0], row[3]
    journey = require_journey(db, actor, journey_id, action="create-referral")
    if row is None or not owns_team(actor, journey.team_id, row[1].organisation_id):
        raise Forbidden("Only the journey's owning team can refer.")
    return journey, db.get(Offer, offer_id)


def _create_statement(columns: tuple[str, ...]) -> sa.Select:
    """PostgreSQL: the new referral, its `create` event and its audit row in one statement
    (data-modifying CTEs); the referral's id."""
    table = Referral.__table__
    created = (sa.insert(table)
               .values({name: sa.bindparam(name, type_=table.c[name].type) for name in columns})
               .returning(table.c.id)
               .cte("created"))
    event = _audited_row(ReferralEvent.__table__, "event_", created,
                         referral_id=created.c.id).cte("event")
    audited = _audited_row(AuditEvent.__table__, "audit_", created,
                           record_id=sa.cast(created.c.id, sa.String)).cte("audited")
    return sa.select(created.c.id).add_cte(event).add_cte(audited)


_REFERRAL_COLUMNS = tuple(c.name for c in Referral.__table__.c if c.name != "id")
_CREATE = _create_statement(_REFERRAL_COLUMNS)


def _insert_referral(db: Session, actor: Principal, referral: Referral) -> None:
    """Write the new referral with its `create` event and audit row: one statement on
    PostgreSQL (the referral then joins the session as if loaded), the unit of work and two
    INSERTs on SQLite. A parallel create that won the one-open-referral index: 409."""
    try:
        if db.get_bind().dialect.name != "postgresql":
            db.add(referral)
            db.flush()
        else:
            db.flush()
            values = {name: getattr(referral, name) for name in _REFERRAL_COLUMNS}
            event = _event_values(actor, 0, "create", None, "draft", None, None,
                                  referral.created_at)
            del event["referral_id"]
            audit_row = audit.allowed_row(actor, "create", "referral", None,
                                          person_id=referral.person_id)
            del audit_row["record_id"]
            referral.id = db.connection().execute(_CREATE, {
                **values, **_prefixed("event_", event),
                **_prefixed("audit_", audit_row)}).scalar_one()
            make_transient_to_detached(referral)
            db.add(referral)  # persistent, as loaded: nothing more to write
            return
    except IntegrityError as exc:  # a parallel create won the partial unique index
        raise _open_rule_conflict() from exc
    _write_event(db, actor, referral.id, "create", None, "draft", None, None,
                 referral.created_at)
    audit.record(db, actor, "create", "referral", referral.id, person_id=referral.person_id)


def create_referral(db: Session, actor: Principal, data: dict) -> Referral:
    """A draft referral from the journey's team to one community offer, with its handover."""
    actor.require(perm.REFERRALS_REFER)
    journey, offer = _journey_to_refer_from(db, actor, data["journey_id"], data["offer_id"])
    if journey.status not in ("planned", "active"):
        raise Conflict(f"The journey is {journey.status}: no new referrals.")
    if offer is None:
        raise Invalid("No such offer.", errors={"offer_id": ["No such offer"]})
    if offer.status != "active":
        raise Invalid("This offer is not taking referrals.",
                      errors={"offer_id": [f"This offer is {offer.status}"]})
    # One open referral per person per offer: the partial unique index decides (below).
    now = clock.now()
    referral = Referral(
        journey_id=journey.id, person_id=journey.person_id, offer_id=offer.id,
        referring_team_id=journey.team_id, receiving_organisation_id=offer.organisation_id,
        status="draft", created_by_user_id=actor.user_id, created_at=now, updated_at=now,
        **{name: data.get(name) for name in HANDOVER_FIELDS},
    )
    _insert_referral(db, actor, referral)
    db.flush()
    return referral


def update_draft(db: Session, actor: Principal, referral_id: int, data: dict,
                 expected_version: int | None = None) -> Referral:
    """Change a draft's handover (the fields given): the referring team only, the version it
    read (If-Match, or the page's hidden field), audited. Once sent, the handover is what the
    receiving organisation was sent: 409."""
    actor.require(perm.REFERRALS_REFER)
    referral, _level = require_referral(db, actor, referral_id, action="update")
    if not _is_referrer(db, actor, referral):
        raise Forbidden("Only the referring team can change this referral.")
    check_version("referral", referral.id, referral.version, expected_version)
    if referral.status != "draft":
        raise Conflict("The referral has been sent: its handover can no longer be changed.",
                       status_now=referral.status)
    values = {name: data[name] for name in HANDOVER_FIELDS if name in data}
    _conditional_update(db, referral, updated_at=clock.now(), **values)
    audit.record(db, actor, "update", "referral", referral.id, person_id=referral.person_id)
    db.flush()
    return referral


# --- the lifecycle ----------------------------------------------------------------------------

def _reason_error(exc: ReasonRequired | UnknownReason) -> Invalid:
    codes = ", ".join(exc.allowed)
    return Invalid(str(exc).capitalize() + ".",
                   errors={"reason_code": [f"Choose a reason: {codes}"]})


def _action_columns(query: sa.Select) -> sa.Select:
    """A lifecycle action reads the referral without its handover texts (up to ~28,000
    characters, never used by an action or its answer; loaded if something reads them)."""
    return query.options(defer(Referral.about_me),
                         *(defer(getattr(Referral, name)) for name in HANDOVER_FIELDS))


def _send_context_columns(query: sa.Select) -> sa.Select:
    """What sending needs, read with the referral (service.scoping.require_referral_with): the
    offer's status and name, the receiving organisation's name, the person's About me, whether
    an active consent names the organisation and whether the person has recorded needs (the
    columns of `_SendContext`, in its order: only what is used, not the three whole rows)."""
    return (_action_columns(query).add_columns(
                Offer.status, Offer.name, Organisation.name, Person.about_strengths,
                Person.about_what_matters, Person.about_what_helps,
                consent_active_clause(Referral.person_id, Referral.receiving_organisation_id,
                                      sa.bindparam("now")),
                sa.exists().where(PersonNeed.person_id == Referral.person_id))
            .join(Offer, Offer.id == Referral.offer_id)
            .join(Person, Person.id == Referral.person_id)
            .join(Organisation, Organisation.id == Referral.receiving_organisation_id))


class _SendContext(NamedTuple):
    offer_status: str
    offer_name: str
    organisation_name: str
    about_strengths: str | None  # the person's About me (about_me_snapshot reads these)
    about_what_matters: str | None
    about_what_helps: str | None
    consented: bool
    has_needs: bool


def _send_values(actor: Principal, data: dict, now: datetime, context: _SendContext) -> dict:
    if context.offer_status != "active":
        raise Invalid("This offer is not taking referrals.",
                      errors={"offer_id": ["This offer is not taking referrals now"]})
    basis = data.get("alternative_basis")
    if basis:
        # Sharing without consent has a permission of its own, checked here on the server.
        actor.require(perm.SHARE_WITHOUT_CONSENT)
    elif not context.consented:
        raise Invalid(
            "No active consent names the receiving organisation.",
            errors={"consent": ["Record the person's consent to share with "
                                f"{context.organisation_name}, "
                                "or give an alternative lawful basis"]})
    return {"sent_at": now, "about_me": about_me_snapshot(context),
            "alternative_basis": basis or None,
            "alternative_justification": data.get("alternative_justification") if basis else None}


def _after_send(db: Session, actor: Principal, referral: Referral,
                context: _SendContext) -> None:
    organisation_name = context.organisation_name
    if referral.alternative_basis:
        audit.record(db, actor, "share-without-consent", "referral", referral.id,
                     person_id=referral.person_id)
        _raise_flag(db, trigger="lawful-basis-review",
                    journey=db.get(Journey, referral.journey_id), referral=referral,
                    urgency="routine",
                    description=f"Sent to {organisation_name} without consent, on the "
                                f"{referral.alternative_basis} basis: review the decision.")
    needs = db.exec(select(PersonNeed.responsibility_code)
                    .where(PersonNeed.person_id == referral.person_id)).all() \
        if context.has_needs else []
    if needs:
        statutory_only = db.exec(select(Responsibility.code)
                                 .where(Responsibility.scope == "statutory-only")).all()
        holds = db.exec(select(OrganisationResponsibility.responsibility_code)
                        .where(OrganisationResponsibility.organisation_id
                               == referral.receiving_organisation_id)).all()
        gap = responsibility_gap(needs, statutory_only, holds)
        if gap:
            _raise_flag(db, trigger="responsibility-gap",
                        journey=db.get(Journey, referral.journey_id), referral=referral,
                        urgency="routine",
                        description=f"{organisation_name} does not hold: "
                                    f"{', '.join(sorted(gap))}. The statutory team keeps these.")


def _accept_values(data: dict, now: datetime) -> dict:
    waitlist = bool(data.get("waitlist"))
    expected = data.get("expected_start")
    if waitlist and expected is None:
        raise Invalid("A waitlisted referral needs an expected start date.",
                      errors={"expected_start": ["Enter the expected start date"]})
    if expected is not None and expected < now.date():
        raise Invalid("The expected start date is in the past.",
                      errors={"expected_start": ["Enter a date from today onwards"]})
    return {"decided_at": now, "waitlist": waitlist, "expected_start": expected}


def act_on_referral(db: Session, actor: Principal, referral_id: int, action: str, data: dict,
                    expected_version: int | None = None) -> Referral:
    """Take one lifecycle action (send, accept, decline, start, hold, resume, complete, fail,
    cancel). Order of checks: scope (404) → side (403) → If-Match (428/412) → lifecycle (409)
    → reason (422) → action's own rules (422) → conditional update (412)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown referral action {action!r}")
    actor.require(perm.REFERRALS_REFER if action in REFERRER_ACTIONS else perm.REFERRALS_DECIDE)
    referral, _level, found = require_referral_with(
        db, actor, referral_id, _send_context_columns if action == "send" else _action_columns,
        action=action)
    _require_side(db, actor, referral, action)
    check_version("referral", referral.id, referral.version, expected_version)
    try:
        to_status = next_status(referral.status, action)
    except IllegalTransition as exc:
        raise Conflict(f"You can't {action} a referral that is {referral.status}.",
                       status_now=referral.status, allowed_actions=exc.allowed) from exc
    reason_code = data.get("reason_code") if to_status in REASON_REQUIRED_FOR else None
    try:
        check_reason(to_status, reason_code)
    except (ReasonRequired, UnknownReason) as exc:
        raise _reason_error(exc) from exc
    reason_text = data.get("reason_text") if reason_code else None

    now = clock.now()
    values: dict = {"status": to_status, "reason_code": reason_code, "reason_text": reason_text,
                    "updated_at": now}
    context = None
    if action == "send":
        context = _SendContext(*found)
        values.update(_send_values(actor, data, now, context))
    elif action == "accept":
        values.update(_accept_values(data, now))
    elif action == "decline":
        values.update(decided_at=now, ended_at=now)
    elif action == "start":
        values.update(started_at=now)
    elif action in ("complete", "fail", "cancel"):
        values.update(ended_at=now)

    inbox_email = None
    if action == "send":  # to the receiving organisation's team inboxes
        inbox_email = {"topic": "referral.sent",
                       "subject": f"New referral to {context.offer_name}",
                       "link_path": f"/referrals/{referral.id}"}
    event = _change(db, actor, referral, action, to_status, reason_code, reason_text, now,
                    values, inbox_email)
    if action == "send":
        _after_send(db, actor, referral, context)
    elif action == "decline" and reason_code == "needs-specialist-support":
        journey = db.get(Journey, referral.journey_id)
        organisation = db.get(Organisation, referral.receiving_organisation_id)
        _raise_flag(db, trigger="declined-needs-specialist", journey=journey, referral=referral,
                    urgency="urgent",
                    description=f"{organisation.name} declined the referral: the person needs "
                                "specialist support.")
    db.flush()
    notify_status_change(db, referral, event)
    return referral


def cancel_open_referrals(db: Session, actor: Principal | None, person_id: int,
                          organisation_id: int, reason_code: str = "consent-withdrawn",
                          reason_text: str | None = None) -> list[Referral]:
    """Cancel every open referral of the person to the organisation (consent withdrawal).

    For callers that already checked their own permission (e.g. consent withdrawal). Rows are
    locked (FOR UPDATE on PostgreSQL); each cancellation writes an event, an audit event and
    calls the status listeners, like any other change.
    """
    check_reason("cancelled", reason_code)
    now = clock.now()
    referrals = list(db.exec(
        select(Referral)
        .where(Referral.person_id == person_id,
               Referral.receiving_organisation_id == organisation_id,
               Referral.status.in_(OPEN_REFERRAL_STATES))
        .order_by(Referral.id)
        .with_for_update()
    ).all())
    for referral in referrals:
        event = _change(db, actor, referral, "cancel", "cancelled", reason_code, reason_text,
                        now, {"status": "cancelled", "reason_code": reason_code,
                              "reason_text": reason_text, "ended_at": now, "updated_at": now})
        db.flush()
        notify_status_change(db, referral, event)
    return referrals


# --- assignment -------------------------------------------------------------------------------

def assign_referral(db: Session, actor: Principal, referral_id: int, user_id: int | None,
                    expected_version: int | None = None) -> Referral:
    """A VCSE manager assigns the referral to a worker of their organisation (or unassigns)."""
    actor.require(perm.REFERRALS_ASSIGN)
    referral, _level = require_referral(db, actor, referral_id, action="assign")
    if not _is_receiver(actor, referral):
        raise Forbidden("Only the receiving organisation can assign this referral.")
    check_version("referral", referral.id, referral.version, expected_version)
    if referral.status not in OPEN_REFERRAL_STATES:
        raise Conflict(f"The referral is {referral.status}: it can't be assigned.")
    assignee = None
    if user_id is not None:
        assignee = db.get(User, user_id)
        eligible = assignee is not None and assignee.is_active and db.scalar(
            sa.select(sa.exists().where(Membership.user_id == user_id,
                                        Membership.organisation_id == actor.organisation_id,
                                        Membership.role.in_(_ASSIGNABLE_ROLES))))
        if not eligible:
            raise Invalid("Assign the referral to a worker of your organisation.",
                          errors={"user_id": ["Choose a worker of your organisation"]})
    _conditional_update(db, referral, assigned_to_user_id=user_id, updated_at=clock.now())
    audit.record(db, actor, "assign", "referral", referral.id, person_id=referral.person_id)
    if assignee is not None and assignee.id != actor.user_id:
        _enqueue_email(db, to=assignee.email, topic="referral.assigned",
                       subject="A referral was assigned to you",
                       link_path=f"/referrals/{referral.id}")
    db.flush()
    return referral


# --- contacts and notes -----------------------------------------------------------------------

def record_contact(db: Session, actor: Principal, referral_id: int, data: dict) -> Contact:
    """An attempt or session with the person, recorded by the receiving organisation."""
    actor.require(perm.CONTACTS_WRITE)
    referral, _level = require_referral(db, actor, referral_id, action="record-contact")
    if not _is_receiver(actor, referral):
        raise Forbidden("Only the receiving organisation records contacts.")
    if referral.status not in CONTACT_STATES:
        raise Conflict(f"The referral is {referral.status}: contacts are recorded once it is "
                       "accepted and until it ends.")
    now = clock.now()
    happened_at: datetime = data["happened_at"]
    if happened_at > now:
        raise Invalid("The contact is in the future.",
                      errors={"happened_at": ["Enter a time that has passed"]})
    if referral.sent_at is not None and happened_at < referral.sent_at:
        raise Invalid("The contact is before the referral was sent.",
                      errors={"happened_at": ["Enter a time after the referral was sent"]})
    contact = Contact(referral_id=referral.id, outcome=data["outcome"], happened_at=happened_at,
                      note=data.get("note"), recorded_by_user_id=actor.user_id, created_at=now)
    db.add(contact)
    db.flush()
    if contact.outcome == "attended":
        # The earliest attended contact wins, whatever order they are recorded in.
        db.exec(
            sa.update(Referral)
            .where(Referral.id == referral.id,
                   sa.or_(Referral.first_contact_at.is_(None),
                          Referral.first_contact_at > happened_at))
            .values(first_contact_at=happened_at, flows_stale=True)  # a mark for the flows
            .execution_options(synchronize_session=False)
        )
    else:
        latest = db.exec(select(Contact.outcome).where(Contact.referral_id == referral.id)
                         .order_by(Contact.happened_at.desc(), Contact.id.desc())
                         .limit(MISSED_CONTACT_RUN)).all()
        if missed_contacts_run(list(latest)):
            _raise_flag(db, trigger="missed-contacts", journey=db.get(Journey, referral.journey_id),
                        referral=referral, urgency="routine",
                        description=f"{MISSED_CONTACT_RUN} contacts in a row did not happen.")
    audit.record(db, actor, "record-contact", "referral", referral.id,
                 person_id=referral.person_id)
    db.flush()
    return contact


def add_note(db: Session, actor: Principal, referral_id: int, data: dict) -> Note:
    """A note or the person's own words (client voice), attributed with the author's role."""
    actor.require(perm.NOTES_WRITE)
    referral, _level = require_referral(db, actor, referral_id, action="add-note")
    now = clock.now()
    note = Note(journey_id=referral.journey_id, referral_id=referral.id,
                author_user_id=actor.user_id, author_role=actor.role or "api-client",
                author_organisation_id=actor.organisation_id, kind=data.get("kind", "note"),
                text=data["text"], created_at=now)
    db.add(note)
    db.flush()
    audit.record(db, actor, "add-note", "referral", referral.id, person_id=referral.person_id)
    return note


def contact_view(db: Session, contact: Contact) -> dict:
    user = db.get(User, contact.recorded_by_user_id) if contact.recorded_by_user_id else None
    return {"id": contact.id, "referral_id": contact.referral_id, "outcome": contact.outcome,
            "happened_at": contact.happened_at, "note": contact.note,
            "recorded_by": {"id": user.id, "name": user.display_name} if user else None,
            "created_at": contact.created_at}


def note_view(db: Session, note: Note) -> dict:
    user = db.get(User, note.author_user_id) if note.author_user_id else None
    org = db.get(Organisation, note.author_organisation_id) if note.author_organisation_id else None
    return {"id": note.id, "referral_id": note.referral_id, "kind": note.kind, "text": note.text,
            "author": {"id": user.id, "name": user.display_name} if user else None,
            "author_role": note.author_role,
            "author_organisation": {"id": org.id, "name": org.name} if org else None,
            "created_at": note.created_at}


# --- reading ----------------------------------------------------------------------------------

def get_referral(db: Session, actor: Principal, referral_id: int) -> tuple[Referral, str]:
    """The referral and the caller's access: FULL, or TOMBSTONE for a VCSE organisation whose
    consent was withdrawn (it keeps "consent withdrawn on <date>", nothing personal)."""
    actor.require(perm.REFERRALS_READ)
    referral, level = require_referral(db, actor, referral_id, allow_tombstone=True)
    audit.record(db, actor, "read" if level == FULL else "read-tombstone", "referral",
                 referral.id, person_id=referral.person_id)
    return referral, level


def _tombstone_detail(withdrawn_at: datetime | None) -> str:
    if withdrawn_at is not None:
        return f"consent withdrawn on {withdrawn_at.date().isoformat()}"
    return "consent no longer covers this referral"


def tombstone_view(db: Session, referral: Referral, organisation_id: int) -> dict:
    withdrawn_at = db.scalar(select(sa.func.max(Consent.withdrawn_at))
                             .where(Consent.person_id == referral.person_id,
                                    Consent.organisation_id == organisation_id))
    return {"id": referral.id, "status": referral.status, "tombstone": True,
            "detail": _tombstone_detail(withdrawn_at), "version": referral.version}


def _person_view(person: Person, vcse: bool) -> dict:
    view = {"id": person.id, "name": display_name(person), "given_name": person.given_name,
            "family_name": person.family_name, "preferred_name": person.preferred_name,
            "pronouns": person.pronouns, "communication_needs": person.communication_needs,
            "postcode_district": person.postcode_district, "borough": person.borough}
    for name in ("phone", "email", "address"):  # contact details, where recorded
        if hasattr(person, name):
            view[name] = getattr(person, name)
    if not vcse:  # minimum necessary: the clinical identifiers stay with statutory teams
        view.update(nhs_number=person.nhs_number, date_of_birth=person.date_of_birth)
    return view


STATE_FIELDS = ("journey_id", "reason_code", "reason_text", "waitlist", "expected_start",
                "alternative_basis", "created_at", "sent_at", "decided_at", "started_at",
                "ended_at", "first_contact_at", "updated_at", "version")


def referral_state_view(db: Session, actor: Principal, referral: Referral) -> dict:
    """What an action changed: status, allowed actions, decision fields and version (no
    further queries). GET the referral for its handover, person and history."""
    view = {"id": referral.id, "status": referral.status,
            "allowed_actions": actions_for(db, actor, referral),
            "assigned_to": ({"id": referral.assigned_to_user_id}
                            if referral.assigned_to_user_id else None)}
    view.update({name: getattr(referral, name) for name in STATE_FIELDS})
    return view


_ASSIGNEE = sa.orm.aliased(User)
_REFERRAL_VIEW_RECORDS = (
    select(Offer, Organisation, Team, Person, _ASSIGNEE)
    .select_from(Referral)
    .join(Offer, Offer.id == Referral.offer_id)
    .join(Organisation, Organisation.id == Referral.receiving_organisation_id)
    .join(Team, Team.id == Referral.referring_team_id)
    .join(Person, Person.id == Referral.person_id)
    .outerjoin(_ASSIGNEE, _ASSIGNEE.id == Referral.assigned_to_user_id)
    .where(Referral.id == sa.bindparam("referral_id"))
)


def _held(db: Session, model, key: int | None):
    """The record if the session already holds it (no query)."""
    return db.identity_map.get(identity_key(model, key)) if key is not None else None


def _view_records(db: Session, referral: Referral) -> tuple:
    """The offer, receiving organisation, referring team, person and assignee: from the
    session when it holds them all (just created), else in one query, not five."""
    held = (_held(db, Offer, referral.offer_id),
            _held(db, Organisation, referral.receiving_organisation_id),
            _held(db, Team, referral.referring_team_id), _held(db, Person, referral.person_id))
    if all(held) and referral.assigned_to_user_id is None:
        return (*held, None)
    return db.exec(_REFERRAL_VIEW_RECORDS, params={"referral_id": referral.id}).one()


def referral_view(db: Session, actor: Principal, referral: Referral, level: str = FULL,
                  detail: bool = True) -> dict:
    """The referral shaped for the caller. `detail` adds events, contacts and notes."""
    if level == TOMBSTONE:
        return tombstone_view(db, referral, actor.organisation_id)
    vcse = actor.organisation_kind == "vcse"
    offer, organisation, team, person, assignee = _view_records(db, referral)
    view = {
        "id": referral.id, "status": referral.status,
        "allowed_actions": actions_for(db, actor, referral),
        "journey_id": referral.journey_id,
        "offer": {"id": offer.id, "name": offer.name, "organisation_id": organisation.id,
                  "organisation_name": organisation.name},
        "referring_team": {"id": team.id, "name": team.name},
        "person": _person_view(person, vcse),
        "handover": {"about_me": referral.about_me,
                     **{name: getattr(referral, name) for name in HANDOVER_FIELDS}},
        "reason_code": referral.reason_code, "reason_text": referral.reason_text,
        "waitlist": referral.waitlist, "expected_start": referral.expected_start,
        "assigned_to": {"id": assignee.id, "name": assignee.display_name} if assignee else None,
        "alternative_basis": referral.alternative_basis,
        "created_at": referral.created_at, "sent_at": referral.sent_at,
        "decided_at": referral.decided_at, "started_at": referral.started_at,
        "ended_at": referral.ended_at, "first_contact_at": referral.first_contact_at,
        "updated_at": referral.updated_at, "version": referral.version,
    }
    if not vcse:
        view["alternative_justification"] = referral.alternative_justification
    if detail:
        users: dict[int, str] = {}

        def ref(user_id: int | None):
            if user_id is None:
                return None
            if user_id not in users:
                users[user_id] = db.get(User, user_id).display_name
            return {"id": user_id, "name": users[user_id]}

        events = db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)
                         .order_by(ReferralEvent.at, ReferralEvent.id)).all()
        if vcse:  # the referring team's drafting is not the receiver's business
            events = [e for e in events if e.to_status != "draft" or e.from_status is not None]
        view["events"] = [
            {"id": e.id, "action": e.action, "from_status": e.from_status,
             "to_status": e.to_status, "reason_code": e.reason_code, "reason_text": e.reason_text,
             "actor": ref(e.actor_user_id), "at": e.at} for e in events]
        contacts = db.exec(select(Contact).where(Contact.referral_id == referral.id)
                           .order_by(Contact.happened_at, Contact.id)).all()
        view["contacts"] = [contact_view(db, c) for c in contacts]
        notes = db.exec(select(Note).where(Note.referral_id == referral.id)
                        .order_by(Note.created_at, Note.id)).all()
        view["notes"] = [note_view(db, n) for n in notes]
    return view


# --- inbox and outbox -------------------------------------------------------------------------

def _encode_cursor(at: datetime, referral_id: int) -> str:
    raw = json.dumps([at.isoformat(), referral_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, referral_id = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if (at.tzinfo is None or not isinstance(referral_id, int)
                or not 0 < referral_id < 2**31):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Invalid("The cursor is not one this service gave out.",
                      errors={"cursor": ["Use next_cursor from the previous page"]}) from exc
    return at, referral_id


def _audit_listed(db: Session, actor: Principal, listed: list[tuple[int, int]]) -> None:
    """One audit event per listed referral (with its person), in ONE statement: a page costs the
    same number of queries whatever its size."""
    if not listed:
        return
    template = audit._event(actor, "list", "referral", None, None, "allowed")
    common = {c.name: getattr(template, c.name) for c in AuditEvent.__table__.columns
              if c.name not in ("id", "record_id", "person_id")}
    db.exec(sa.insert(AuditEvent.__table__), params=[
        {**common, "record_id": str(referral_id), "person_id": person_id}
        for referral_id, person_id in listed])


def list_referrals(db: Session, actor: Principal, *, box: str | None = None,
                   status: str | None = None, offer: int | None = None,
                   assignee: str | None = None, limit: int = 25,
                   cursor: str | None = None) -> tuple[list[dict], str | None]:
    """The inbox (VCSE: sent referrals to my organisation's offers, newest sent first) or the
    outbox (statutory: my team's referrals, newest first). Keyset paginated with an opaque
    cursor; one SELECT per page (plus one batched audit INSERT), whatever the page size."""
    actor.require(perm.REFERRALS_READ)
    vcse = actor.organisation_kind == "vcse"
    box = box or ("inbox" if vcse else "outbox")
    if (box == "inbox") != vcse:
        raise Invalid("The inbox is for VCSE organisations, the outbox for statutory teams.",
                      errors={"box": [f"Use box={'inbox' if vcse else 'outbox'}"]})
    now = clock.now()
    if box == "inbox":
        sort = Referral.sent_at
        where = [Referral.receiving_organisation_id == actor.organisation_id,
                 Referral.sent_at.is_not(None), Referral.status != "draft"]
    else:
        sort = Referral.created_at
        where = [_team_clause(actor, Referral.referring_team_id)]
    if status:
        where.append(Referral.status == status)
    if offer:
        where.append(Referral.offer_id == offer)
    if assignee == "none":
        where.append(Referral.assigned_to_user_id.is_(None))
    elif assignee == "me":
        if actor.user_id is None:
            raise Invalid("An API client has no referrals of its own.",
                          errors={"assignee": ["Use a user id"]})
        where.append(Referral.assigned_to_user_id == actor.user_id)
    elif assignee:
        where.append(Referral.assigned_to_user_id == int(assignee))
    if cursor:
        at, after_id = _decode_cursor(cursor)
        where.append(sa.tuple_(sort, Referral.id)
                     < sa.tuple_(sa.bindparam("cursor_at", at, type_=UTCDateTime()),
                                 sa.bindparam("cursor_id", after_id, type_=sa.Integer())))
    assigned = sa.orm.aliased(User)
    columns = [Referral.id, Referral.status, Referral.journey_id, Referral.person_id,
               Referral.offer_id, Offer.name, Referral.receiving_organisation_id,
               Organisation.name, Referral.referring_team_id, Team.name, Person.given_name,
               Person.family_name, Person.preferred_name, Referral.assigned_to_user_id,
               assigned.display_name, Referral.reason_code, Referral.waitlist,
               Referral.expected_start, Referral.created_at, Referral.sent_at,
               Referral.decided_at, Referral.version]
    if vcse:
        columns.append(sa.or_(
            Referral.alternative_basis.is_not(None),
            consent_active_clause(Referral.person_id, actor.organisation_id, now)).label("full"))
        columns.append(
            sa.select(sa.func.max(Consent.withdrawn_at))
            .where(Consent.person_id == Referral.person_id,
                   Consent.organisation_id == actor.organisation_id)
            .scalar_subquery().label("withdrawn_at"))
    # The page's ids first (an index range scan), then everything else for those rows only:
    # the planner then checks consent per listed row instead of hashing every consent.
    page = (sa.select(Referral.id).where(*where).order_by(sort.desc(), Referral.id.desc())
            .limit(limit + 1).subquery("page"))
    query = (
        sa.select(*columns)
        .join(page, page.c.id == Referral.id)
        .join(Offer, Offer.id == Referral.offer_id)
        .join(Organisation, Organisation.id == Referral.receiving_organisation_id)
        .join(Team, Team.id == Referral.referring_team_id)
        .join(Person, Person.id == Referral.person_id)
        .outerjoin(assigned, assigned.id == Referral.assigned_to_user_id)
        .order_by(sort.desc(), Referral.id.desc())
    )
    rows = db.exec(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    _audit_listed(db, actor, [(row[0], row[3]) for row in rows])
    items = []
    for row in rows:
        (rid, rstatus, journey_id, person_id, offer_id, offer_name, org_id, org_name, team_id,
         team_name, given, family, preferred, assignee_id, assignee_name, reason_code,
         waitlist, expected_start, created_at, sent_at, decided_at, version) = row[:22]
        offer_ref = {"id": offer_id, "name": offer_name, "organisation_id": org_id,
                     "organisation_name": org_name}
        if vcse and not row[22]:
            items.append({"id": rid, "status": rstatus, "tombstone": True,
                          "detail": _tombstone_detail(row[23]), "offer": offer_ref,
                          "sent_at": sent_at, "version": version})
            continue
        items.append({
            "id": rid, "status": rstatus, "journey_id": journey_id, "offer": offer_ref,
            "referring_team": {"id": team_id, "name": team_name},
            "person": {"id": person_id, "name": f"{preferred or given} {family}"},
            "assigned_to": {"id": assignee_id, "name": assignee_name} if assignee_id else None,
            "reason_code": reason_code, "waitlist": waitlist, "expected_start": expected_start,
            "created_at": created_at, "sent_at": sent_at, "decided_at": decided_at,
            "version": version,
        })
    next_cursor = None
    if more and rows:
        last = rows[-1]  # (id, ..., created_at at 18, sent_at at 19)
        next_cursor = _encode_cursor(last[19] if box == "inbox" else last[18], last[0])
    return items, next_cursor
