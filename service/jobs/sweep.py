"""The timer sweep (DESIGN §5 rules 3-4): `flask --app service sweep [--as-of ISO-8601]`.

Evaluates every timer as of one instant:

- `not-answered`: a referral still `requested` after the offer's response target in working
  days (England bank holidays excluded) from the day it was sent;
- `no-first-contact`: accepted (or started) with no first contact within 10 working days of
  acceptance;
- `missed-contacts`: the latest 3 contacts of an accepted / in-progress referral were all
  `did-not-attend` / `could-not-contact`;
- `review-overdue`: a planned or active journey whose review date has passed;
- escalation: an `open` flag past its acknowledgement target is escalated once, to the
  team's managers;
- a journey whose safety net has elapsed is `finished`.

How it scales. Candidates are chosen in SQL with indexes, never by a Python loop over rows:
working-day arithmetic happens in Python only to turn each distinct response target (a
handful) into a cutoff timestamp, then one indexed query per target. Candidates are processed
in batches, one transaction each: the batch's subject rows are locked with
`FOR NO KEY UPDATE SKIP LOCKED` (PostgreSQL; `FOR UPDATE` for flags being escalated), the
condition is re-checked in that transaction, flags are raised, and the batch commits. A
second sweep on another node skips locked rows, and re-checks what it does lock after the
first committed, so each flag is raised once. SQLite has no row locks (and one writer).

Idempotent: a timer that already raised a flag for its subject does not raise another (an
unresolved flag always blocks; a resolved one blocks until the timer starts again, e.g. a
later missed contact or a new review date).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from models import Contact, Flag, FlagEvent, Journey, Offer, Referral
from models.flag_rules import (
    FIRST_CONTACT_WORKING_DAYS,
    MISSED_CONTACT_OUTCOMES,
    MISSED_CONTACT_RUN,
    response_due,
)
from models.working_days import add_working_days
from service.audit import operations as audit
from service.flags.operations import TRIGGER_LABELS, raise_flag, team_manager_recipients
from service.jobs.outbox import enqueue_email

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")
DEFAULT_BATCH = 500

# Urgency of each timer's flag.
TIMER_URGENCY = {
    "not-answered": "routine",
    "no-first-contact": "routine",
    "missed-contacts": "routine",  # as raised by record_contact (service.referrals)
    "review-overdue": "routine",
}
_CONTACT_STATES = ("accepted", "in-progress")
_REVIEW_STATES = ("planned", "active")


@dataclass
class SweepSummary:
    as_of: datetime
    raised: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMER_URGENCY, 0))
    escalated: int = 0
    finished_journeys: int = 0
    skipped_locked: int = 0

    @property
    def total(self) -> int:
        return sum(self.raised.values()) + self.escalated + self.finished_journeys

    def lines(self) -> list[str]:
        out = [f"sweep as of {self.as_of.isoformat()}"]
        out += [f"  {trigger:<18} {count} flag(s) raised" for trigger, count in self.raised.items()]
        out.append(f"  {'escalated':<18} {self.escalated} flag(s)")
        out.append(f"  {'finished':<18} {self.finished_journeys} journey(s) past the safety net")
        if self.skipped_locked:
            out.append(f"  {self.skipped_locked} candidate(s) locked by another sweep, left to it")
        return out


# --- calendar: working days -> cutoff timestamps ----------------------------------------------

def london_date(at: datetime) -> date:
    return at.astimezone(LONDON).date()


def start_of_london_day(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=LONDON).astimezone(UTC)


def last_overdue_start_day(today: date, due: Callable[[date], date]) -> date:
    """The latest start day whose deadline (`due(start)`, inclusive) is before `today`.

    `due` is monotonic (a later start never has an earlier deadline), so everything that
    started on or before the returned day is overdue today, and nothing later is.
    """
    start = today
    while due(start) >= today:
        start -= timedelta(days=1)
    return start


def overdue_cutoff(today: date, due: Callable[[date], date]) -> datetime:
    """Timestamps strictly before this (UTC) started on an overdue London day."""
    return start_of_london_day(last_overdue_start_day(today, due) + timedelta(days=1))


def response_cutoff(today: date, target_days: int) -> datetime:
    return overdue_cutoff(today, lambda sent_on: response_due(sent_on, target_days))


def first_contact_cutoff(today: date) -> datetime:
    return overdue_cutoff(today, lambda accepted_on: add_working_days(
        accepted_on, FIRST_CONTACT_WORKING_DAYS))


# --- the candidate conditions (SQL) -----------------------------------------------------------

def _no_flag_since(trigger: str, subject_prefix: str, subject_id, started_at):
    """SQL: no unresolved flag for this trigger and subject, nor one raised since `started_at`."""
    key = sa.literal(f"{trigger}:{subject_prefix}") + sa.cast(subject_id, sa.String)
    return ~sa.exists().where(
        Flag.dedupe_key == key,
        sa.or_(Flag.status != "resolved", Flag.raised_at >= started_at),
    )


def _not_answered_queries(db: Session, today: date) -> list[sa.Select]:
    targets = db.scalars(sa.select(Offer.response_target_days).distinct()).all()
    queries = []
    for target in sorted(targets):
        cutoff = response_cutoff(today, target)
        queries.append(
            sa.select(Referral.id)
            .join(Offer, Offer.id == Referral.offer_id)
            .where(Referral.status == "requested", Referral.sent_at < cutoff,
                   Offer.response_target_days == target,
                   _no_flag_since("not-answered", "r", Referral.id, Referral.sent_at))
        )
    return queries


def _no_first_contact_query(today: date) -> sa.Select:
    cutoff = first_contact_cutoff(today)
    return sa.select(Referral.id).where(
        Referral.status.in_(_CONTACT_STATES), Referral.first_contact_at.is_(None),
        Referral.decided_at < cutoff,
        _no_flag_since("no-first-contact", "r", Referral.id, Referral.decided_at),
    )


def _missed_contacts_query() -> sa.Select:
    """Referrals whose latest 3 contacts were all missed (window function, both engines)."""
    missed = tuple(sorted(MISSED_CONTACT_OUTCOMES))
    # Only referrals with at least 3 missed contacts can qualify: a cheap pre-filter.
    enough = (sa.select(Contact.referral_id).where(Contact.outcome.in_(missed))
              .group_by(Contact.referral_id).having(sa.func.count() >= MISSED_CONTACT_RUN))
    ranked = (
        sa.select(
            Contact.referral_id, Contact.outcome, Contact.happened_at,
            sa.func.row_number().over(partition_by=Contact.referral_id,
                                      order_by=(Contact.happened_at.desc(), Contact.id.desc()))
            .label("rn"),
        )
        .join(Referral, Referral.id == Contact.referral_id)
        .where(Referral.status.in_(_CONTACT_STATES), Contact.referral_id.in_(enough))
        .subquery()
    )
    latest = (
        sa.select(ranked.c.referral_id, sa.func.max(ranked.c.happened_at).label("last_at"))
        .where(ranked.c.rn <= MISSED_CONTACT_RUN)
        .group_by(ranked.c.referral_id)
        .having(sa.func.sum(sa.case((ranked.c.outcome.in_(missed), 1), else_=0))
                == MISSED_CONTACT_RUN)
        .subquery()
    )
    return sa.select(latest.c.referral_id).where(
        _no_flag_since("missed-contacts", "r", latest.c.referral_id, latest.c.last_at))


def _review_overdue_query(today: date) -> sa.Select:
    # A flag raised on or after the review date belongs to this review; a new date re-arms it.
    return sa.select(Journey.id).where(
        Journey.status.in_(_REVIEW_STATES), Journey.review_due < today,
        ~sa.exists().where(
            Flag.dedupe_key == sa.literal("review-overdue:j") + sa.cast(Journey.id, sa.String),
            sa.or_(Flag.status != "resolved", sa.func.date(Flag.raised_at) >= Journey.review_due),
        ),
    )


# --- batches under row locks ------------------------------------------------------------------

def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield list(ids[i:i + size])


def _lock(db: Session, table, ids: list[int], *, update: bool = False) -> list[int]:
    """Lock these subject rows (skipping rows another sweep holds); returns the locked ids."""
    query = sa.select(table.id).where(table.id.in_(ids)).order_by(table.id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, key_share=not update)
    return list(db.scalars(query).all())


class Sweep:
    def __init__(self, session_factory: Callable[[], Session], as_of: datetime, *,
                 batch_size: int = DEFAULT_BATCH, progress: Callable[[int], None] | None = None):
        if as_of.tzinfo is None:
            raise ValueError("as_of must be an aware datetime")
        self.session_factory = session_factory
        self.as_of = as_of.astimezone(UTC)
        self.today = london_date(self.as_of)
        self.batch_size = batch_size
        self.progress = progress or (lambda _n: None)
        self.summary = SweepSummary(as_of=self.as_of)

    # Candidate discovery: one read-only transaction, ids only.
    def candidates(self) -> dict[str, list[int]]:
        with self.session_factory() as db:
            found = {
                "not-answered": sorted({i for q in _not_answered_queries(db, self.today)
                                        for i in db.scalars(q).all()}),
                "no-first-contact": list(db.scalars(
                    _no_first_contact_query(self.today).order_by(Referral.id)).all()),
                "missed-contacts": sorted(db.scalars(_missed_contacts_query()).all()),
                "review-overdue": list(db.scalars(
                    _review_overdue_query(self.today).order_by(Journey.id)).all()),
            }
            db.rollback()
        return found

    def _raise_batch(self, trigger: str, ids: list[int]) -> None:
        subject = Journey if trigger == "review-overdue" else Referral
        with self.session_factory() as db:
            locked = _lock(db, subject, ids)
            self.summary.skipped_locked += len(ids) - len(locked)
            if locked:
                # Re-check under the lock: another sweep may have raised these and committed.
                query = self._query_for(db, trigger)
                due = set(db.scalars(query.where(query.selected_columns[0].in_(locked))).all())
                for subject_id in locked:
                    if subject_id not in due:
                        continue
                    if subject is Journey:
                        journey, referral = db.get(Journey, subject_id), None
                    else:
                        referral = db.get(Referral, subject_id)
                        journey = db.get(Journey, referral.journey_id)
                    raise_flag(db, trigger=trigger, journey=journey, referral=referral,
                               urgency=TIMER_URGENCY[trigger], now=self.as_of)
                    self.summary.raised[trigger] += 1
            db.commit()
        self.progress(len(ids))

    def _query_for(self, db: Session, trigger: str) -> sa.Select:
        if trigger == "not-answered":
            return _union_ids(_not_answered_queries(db, self.today))
        if trigger == "no-first-contact":
            return _no_first_contact_query(self.today)
        if trigger == "missed-contacts":
            return _missed_contacts_query()
        return _review_overdue_query(self.today)

    def escalate(self) -> None:
        """Open flags past their acknowledgement target, escalated once each."""
        while True:
            with self.session_factory() as db:
                query = (sa.select(Flag)
                         .where(Flag.status == "open", Flag.escalated_at.is_(None),
                                Flag.acknowledgement_due < self.as_of)
                         .order_by(Flag.acknowledgement_due, Flag.id)
                         .limit(self.batch_size))
                if db.get_bind().dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                flags = list(db.scalars(query).all())
                for flag in flags:
                    escalate_flag(db, flag, self.as_of)
                self.summary.escalated += len(flags)
                db.commit()
            if len(flags) < self.batch_size:
                return

    def finish_journeys(self) -> None:
        """Active journeys whose safety net has elapsed become `finished` (one UPDATE)."""
        with self.session_factory() as db:
            ids = list(db.scalars(sa.select(Journey.id).where(
                Journey.status == "active", Journey.safety_net_ends < self.today)).all())
            for chunk in _chunks(ids, self.batch_size):
                locked = _lock(db, Journey, chunk, update=True)
                if not locked:
                    continue
                result = db.execute(
                    sa.update(Journey)
                    .where(Journey.id.in_(locked), Journey.status == "active",
                           Journey.safety_net_ends < self.today)
                    .values(status="finished", version=Journey.version + 1,
                            updated_at=self.as_of)
                    .returning(Journey.id, Journey.person_id)
                )
                for journey_id, person_id in result.all():
                    audit.record(db, None, "finish", "journey", journey_id, person_id=person_id)
                    self.summary.finished_journeys += 1
                db.commit()

    def process(self, found: dict[str, list[int]]) -> SweepSummary:
        """Raise the candidates' flags batch by batch, then escalate and finish journeys."""
        for trigger, ids in found.items():
            for chunk in _chunks(ids, self.batch_size):
                self._raise_batch(trigger, chunk)
        self.escalate()
        self.finish_journeys()
        return self.summary

    def run(self) -> SweepSummary:
        return self.process(self.candidates())


def _union_ids(queries: list[sa.Select]) -> sa.Select:
    if len(queries) == 1:
        return queries[0]
    if not queries:
        return sa.select(Referral.id).where(sa.false())
    union = sa.union(*queries).subquery()
    return sa.select(union.c.id)


def escalate_flag(db: Session, flag: Flag, at: datetime) -> None:
    """Mark the flag escalated (once), record it, and email the routed team's managers."""
    flag.escalated_at = at
    flag.version += 1
    db.add(flag)
    db.add(FlagEvent(flag_id=flag.id, kind="escalated", at=at,
                     note="not acknowledged within its target; team managers told"))
    audit.record(db, None, "escalate", "flag", flag.id, person_id=flag.person_id)
    teams = [flag.routed_team_id] + ([flag.also_routed_team_id] if flag.also_routed_team_id else [])
    sent: set[str] = set()
    for team_id in teams:
        for address in team_manager_recipients(db, team_id):
            if address not in sent:
                sent.add(address)
                enqueue_email(
                    db, to=address, topic="flag.escalated", link_path=f"/flags/{flag.id}",
                    subject=f"Stepdown: {flag.urgency} flag not acknowledged in time - "
                            f"{TRIGGER_LABELS[flag.trigger]}",
                )
    db.flush()


def run_sweep(session_factory: Callable[[], Session], as_of: datetime, *,
              batch_size: int = DEFAULT_BATCH,
              progress: Callable[[int], None] | None = None) -> SweepSummary:
    return Sweep(session_factory, as_of, batch_size=batch_size, progress=progress).run()
