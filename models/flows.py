"""What the alliance flows figures need of each sent referral, stored when it changes.

The flows report counts and times up to a million referrals per request. Working out each
referral's London dates and England working days inside the report's SQL made it scan and
sort every row several times (PostgreSQL has no England bank holidays), so the per-referral
dimensions are worked out once, when the referral, its first attended contact or its person
changes, and kept in one narrow row: ``ReferralFlow``. The report then only groups and counts.

The classification (outcome, age band, working days) is pure and lives here, so the
operations that keep the rows current, the demo data and the benchmark's bulk generator all
use the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.working_days import working_days_between

LONDON = ZoneInfo("Europe/London")
NOT_RECORDED = "not-recorded"
FLOW_OUTCOMES = ("awaiting", "declined", "withdrawn", "in-progress", "completed", "failed",
                 "cancelled-after-acceptance")
ACCEPTED_OUTCOMES = ("in-progress", "completed", "failed", "cancelled-after-acceptance")
CLOSED_STATUSES = ("rejected", "cancelled", "failed")
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_LIMITS = ((18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"),
               (65, "55-64"))


class ReferralFlow(SQLModel, table=True):
    """One row per sent referral: its flows dimensions, current as of its last change."""

    __tablename__ = "referral_flow"
    __table_args__ = (
        sa.CheckConstraint(in_list("outcome", FLOW_OUTCOMES), name="outcome"),
        # The report reads one date range of one alliance's rows.
        sa.Index("ix_referral_flow_sent_on", "sent_on"),
    )

    referral_id: int = Field(foreign_key="referral.id", primary_key=True,
                             sa_column_kwargs={"autoincrement": False})
    person_id: int = Field(foreign_key="person.id", index=True)  # to follow the person's edits
    sent_on: date  # the London date it was sent
    sent_month: int  # YYYYMM of sent_on
    referring_team_id: int = Field(foreign_key="team.id")
    referring_organisation_id: int = Field(foreign_key="organisation.id")
    offer_id: int = Field(foreign_key="offer.id")
    receiving_organisation_id: int = Field(foreign_key="organisation.id")
    outcome: str = Field(max_length=30)
    reason: str | None = Field(default=None, max_length=40)  # closed referrals only
    waitlist: bool = Field(default=False)
    contacted: bool = Field(default=False)  # a contact recorded as attended
    decision_days: int | None = Field(default=None)  # working days, sent to decided
    contact_days: int | None = Field(default=None)  # working days, decided to first contact
    borough: str = Field(max_length=100)
    sex: str = Field(max_length=20)
    ethnic_category: str = Field(max_length=20)
    age_band: str = Field(max_length=10)


def london_date(moment: datetime) -> date:
    """The Europe/London calendar date of an aware (or naive UTC) moment."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LONDON).date()


def flow_outcome(status: str, decided: bool) -> str:
    """The referral's outcome in the report's words, from its status now."""
    if status == "rejected":
        return "declined"
    if status in ("draft", "requested"):
        return "awaiting"
    if status == "cancelled":
        return "cancelled-after-acceptance" if decided else "withdrawn"
    if status in ("completed", "failed"):
        return status
    return "in-progress"


def age_band(born: date | None, on: date) -> str:
    if born is None:
        return NOT_RECORDED
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return next((label for limit, label in _AGE_LIMITS if age < limit), "65+")


@dataclass(frozen=True)
class FlowInputs:
    """The recorded facts one flow row is worked out from."""

    status: str
    reason_code: str | None
    waitlist: bool
    sent_at: datetime
    decided_at: datetime | None
    first_attended_at: datetime | None
    borough: str | None
    sex: str | None
    ethnic_category: str | None
    date_of_birth: date | None


def flow_values(facts: FlowInputs, days_between=working_days_between) -> dict:
    """The dimension columns of ReferralFlow (all but the keys) for one referral.

    `days_between(a, b)` counts working days after a up to b; the bulk generator passes a
    faster lookup with the same answers.
    """
    sent_on = london_date(facts.sent_at)
    decided_on = london_date(facts.decided_at) if facts.decided_at else None
    outcome = flow_outcome(facts.status, decided_on is not None)
    accepted = outcome in ACCEPTED_OUTCOMES
    contact_on = london_date(facts.first_attended_at) if facts.first_attended_at else None
    return {
        "sent_on": sent_on,
        "sent_month": sent_on.year * 100 + sent_on.month,
        "outcome": outcome,
        "reason": (facts.reason_code or NOT_RECORDED) if facts.status in CLOSED_STATUSES
        else None,
        "waitlist": bool(facts.waitlist),
        "contacted": contact_on is not None,
        "decision_days": days_between(sent_on, decided_on) if decided_on else None,
        "contact_days": days_between(decided_on, contact_on)
        if accepted and decided_on and contact_on else None,
        "borough": facts.borough or NOT_RECORDED,
        "sex": facts.sex or NOT_RECORDED,
        "ethnic_category": facts.ethnic_category or NOT_RECORDED,
        "age_band": age_band(facts.date_of_birth, sent_on),
    }


class FlowMonth(SQLModel, table=True):
    """The flow rows counted by London month of sending, referring team and offer.

    Kept in step with ReferralFlow on every write (service.flows.facts), so a report over
    whole months adds up a few thousand of these instead of reading every referral. Each
    referral counts once in every measure that applies to it (``flow_cells``):

    - ``outcome``: a = outcome, b = reason ('' unless closed);
    - ``accepted`` (accepted outcomes only): a = contacted | not-contacted,
      b = waitlist | no-waitlist;
    - ``decision_days``: a = working days to the decision ('' if none), b = 'target' when
      the offer's response target applies ('' for awaiting and withdrawn);
    - ``contact_days``: a = working days from decision to first contact;
    - ``borough``, ``sex``, ``ethnic_category``, ``age_band``: a = the value,
      b = accepted | not-accepted.
    """

    __tablename__ = "flow_month"

    sent_month: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    referring_team_id: int = Field(foreign_key="team.id", primary_key=True,
                                   sa_column_kwargs={"autoincrement": False})
    offer_id: int = Field(foreign_key="offer.id", primary_key=True,
                          sa_column_kwargs={"autoincrement": False})
    measure: str = Field(primary_key=True, max_length=20)
    a: str = Field(primary_key=True, max_length=100)
    b: str = Field(primary_key=True, max_length=40)
    n: int = Field(default=0)


class FlowDay(SQLModel, table=True):
    """The same counts by London date of sending: for the days of a month a report's
    period only partly covers (a year from the 15th, say)."""

    __tablename__ = "flow_day"

    sent_on: date = Field(primary_key=True)
    referring_team_id: int = Field(foreign_key="team.id", primary_key=True,
                                   sa_column_kwargs={"autoincrement": False})
    offer_id: int = Field(foreign_key="offer.id", primary_key=True,
                          sa_column_kwargs={"autoincrement": False})
    measure: str = Field(primary_key=True, max_length=20)
    a: str = Field(primary_key=True, max_length=100)
    b: str = Field(primary_key=True, max_length=40)
    sent_month: int  # YYYYMM of sent_on, for the trend by month
    n: int = Field(default=0)


EQUALITY_FIELDS = ("borough", "sex", "ethnic_category", "age_band")


def flow_cells(row: dict) -> list[tuple[str, str, str]]:
    """The (measure, a, b) cells one flow row counts in, by month and by day (the same as
    the SQL of service.flows.facts.cells_sql, which a test holds it to)."""
    outcome = row["outcome"]
    accepted = outcome in ACCEPTED_OUTCOMES
    cells = [("outcome", outcome, row["reason"] or "")]
    if accepted:
        cells.append(("accepted", "contacted" if row["contacted"] else "not-contacted",
                      "waitlist" if row["waitlist"] else "no-waitlist"))
    target = outcome not in ("awaiting", "withdrawn")
    if row["decision_days"] is not None or target:
        days = "" if row["decision_days"] is None else str(row["decision_days"])
        cells.append(("decision_days", days, "target" if target else ""))
    if row["contact_days"] is not None:
        cells.append(("contact_days", str(row["contact_days"]), ""))
    decision = "accepted" if accepted else "not-accepted"
    cells += [(field, row[field], decision) for field in EQUALITY_FIELDS]
    return cells
