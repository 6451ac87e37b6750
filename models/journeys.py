"""A step-down journey (FHIR EpisodeOfCare) and its MDT."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import UTCDateTime, utcnow
from models.vocab import JOURNEY_STATES, MDT_ROLES


class Journey(SQLModel, table=True):
    __tablename__ = "journey"
    __table_args__ = (
        sa.CheckConstraint(in_list("status", JOURNEY_STATES), name="status"),
        sa.CheckConstraint("safety_net_days BETWEEN 0 AND 365", name="safety_net_days"),
        sa.CheckConstraint(
            "safety_net_ends IS NULL OR discharged_on IS NOT NULL", name="safety_net_needs_discharge"
        ),
        sa.Index("ix_journey_status_review_due", "status", "review_due"),
        # The flows report's safety net: discharged journeys by date, read from the index alone.
        sa.Index("ix_journey_discharged", "discharged_on", "team_id", "stepped_up_at",
                 postgresql_where=sa.text("discharged_on IS NOT NULL"),
                 sqlite_where=sa.text("discharged_on IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    team_id: int = Field(foreign_key="team.id", index=True)  # the owning statutory team
    statutory_contact_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    status: str = Field(default="planned", max_length=20)
    discharged_on: date | None = Field(default=None)
    safety_net_days: int = Field(default=90)
    safety_net_ends: date | None = Field(default=None)
    review_due: date | None = Field(default=None)
    stepped_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    step_up_trigger: str | None = Field(default=None, max_length=60)
    step_up_flag_id: int | None = Field(default=None)
    step_up_note: str | None = Field(default=None, max_length=2000)
    created_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JourneyMember(SQLModel, table=True):
    """A named person in the journey's MDT, as an equal member with a role."""

    __tablename__ = "journey_member"
    __table_args__ = (sa.CheckConstraint(in_list("role", MDT_ROLES), name="role"),)

    journey_id: int = Field(foreign_key="journey.id", primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    role: str = Field(max_length=40)  # models.vocab.MDT_ROLES
