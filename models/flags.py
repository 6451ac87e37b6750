"""Flags: "specialist statutory pick-up needed" (FHIR Flag)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import BigIntegerKey, UTCDateTime, utcnow
from models.vocab import CONCERN_CATEGORIES, FLAG_OUTCOMES, FLAG_STATES, FLAG_TRIGGERS, URGENCIES

URGENCY_RANK_SQL = (
    "CASE urgency WHEN 'emergency' THEN 0 WHEN 'urgent' THEN 1 WHEN 'routine' THEN 2 ELSE 9 END"
)


class Flag(SQLModel, table=True):
    __tablename__ = "flag"
    __table_args__ = (
        sa.CheckConstraint(in_list("trigger", FLAG_TRIGGERS), name="trigger"),
        sa.CheckConstraint(in_list("urgency", URGENCIES), name="urgency"),
        sa.CheckConstraint(in_list("status", FLAG_STATES), name="status"),
        sa.CheckConstraint(
            f"category IS NULL OR {in_list('category', CONCERN_CATEGORIES)}", name="category"
        ),
        sa.CheckConstraint(
            f"outcome IS NULL OR {in_list('outcome', FLAG_OUTCOMES)}", name="outcome"
        ),
        sa.CheckConstraint("status <> 'resolved' OR outcome IS NOT NULL", name="resolved_outcome"),
        # One unresolved flag per trigger and subject (referral or journey).
        sa.Index(
            "uq_flag_unresolved_dedupe",
            "dedupe_key",
            unique=True,
            postgresql_where=sa.text("status <> 'resolved'"),
            sqlite_where=sa.text("status <> 'resolved'"),
        ),
        # The duty queue, in its order (most urgent, then most overdue): an index range scan
        # reads just the page, whatever the queue's length.
        sa.Index("ix_flag_queue", "routed_team_id", "status", "urgency_rank",
                 "acknowledgement_due", "id"),
        sa.Index("ix_flag_also_routed_queue", "also_routed_team_id", "status", "urgency_rank",
                 "acknowledgement_due", "id"),
        # The sweep: has this timer already raised a flag for this subject (in any status)?
        sa.Index("ix_flag_dedupe_key_raised", "dedupe_key", "raised_at"),
        # The sweep's escalation of open flags past their acknowledgement target.
        sa.Index(
            "ix_flag_escalation_due",
            "acknowledgement_due",
            postgresql_where=sa.text("status = 'open' AND escalated_at IS NULL"),
            sqlite_where=sa.text("status = 'open' AND escalated_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    journey_id: int = Field(foreign_key="journey.id", index=True)
    referral_id: int | None = Field(default=None, foreign_key="referral.id", index=True)
    trigger: str = Field(max_length=40)
    category: str | None = Field(default=None, max_length=30)
    urgency: str = Field(max_length=20)
    # Derived by the database from urgency (emergency 0, urgent 1, routine 2), for the queue order.
    urgency_rank: int | None = Field(default=None, sa_column=sa.Column(
        "urgency_rank", sa.SmallInteger,
        sa.Computed(URGENCY_RANK_SQL, persisted=True), nullable=False))
    dedupe_key: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=4000)
    raised_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")  # None: the system
    raised_by_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    routed_team_id: int = Field(foreign_key="team.id")
    also_routed_team_id: int | None = Field(default=None, foreign_key="team.id")  # safeguarding
    status: str = Field(default="open", max_length=20)
    raised_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    acknowledgement_due: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    outcome: str | None = Field(default=None, max_length=30)
    resolution_note: str | None = Field(default=None, max_length=4000)
    version: int = Field(default=1)


# A flag event's note: a staff note (up to 4000 characters) after what the service puts before
# it (a resolution's outcome; a re-trigger's changes, such as "urgency routine -> emergency").
EVENT_NOTE_MAX = 4100


class FlagEvent(SQLModel, table=True):
    """History of a flag: raised, re-triggered, acknowledged, escalated, resolved."""

    __tablename__ = "flag_event"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntegerKey)
    flag_id: int = Field(foreign_key="flag.id", index=True)
    kind: str = Field(max_length=20)
    actor_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    note: str | None = Field(default=None, max_length=EVENT_NOTE_MAX)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
