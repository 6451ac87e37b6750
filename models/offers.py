"""Community offers run by VCSE organisations (Open Referral UK `service`)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import UTCDateTime, utcnow
from models.vocab import CAPACITY, OFFER_STATUSES


class Offer(SQLModel, table=True):
    __tablename__ = "offer"
    __table_args__ = (
        sa.CheckConstraint(in_list("capacity", CAPACITY), name="capacity"),
        sa.CheckConstraint(in_list("status", OFFER_STATUSES), name="status"),
        sa.CheckConstraint("response_target_days >= 0", name="response_target"),
        sa.CheckConstraint(
            "min_age IS NULL OR max_age IS NULL OR min_age <= max_age", name="age_range"
        ),
        sa.UniqueConstraint("organisation_id", "external_id", name="uq_offer_org_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    min_age: int | None = Field(default=None)
    max_age: int | None = Field(default=None)
    eligibility: str | None = Field(default=None, max_length=2000)
    capacity: str = Field(default="capacity", max_length=20)
    waitlist_weeks: int | None = Field(default=None)
    response_target_days: int = Field(default=5)
    status: str = Field(default="active", max_length=20)
    assured_date: date | None = Field(default=None)
    url: str | None = Field(default=None, max_length=500)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    external_id: str | None = Field(default=None, max_length=200)  # id in an imported ORUK feed
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OfferArea(SQLModel, table=True):
    """A borough or postcode district an offer serves."""

    __tablename__ = "offer_area"

    offer_id: int = Field(foreign_key="offer.id", primary_key=True)
    area: str = Field(primary_key=True, max_length=100)


class OfferResponsibility(SQLModel, table=True):
    __tablename__ = "offer_responsibility"

    offer_id: int = Field(foreign_key="offer.id", primary_key=True)
    responsibility_code: str = Field(foreign_key="responsibility.code", primary_key=True)


class OfferCapacityChange(SQLModel, table=True):
    """An offer's capacity from a moment on: written when the offer is created and whenever
    its capacity changes, so the flows report can say how long each offer spent taking
    referrals, on a waiting list or full over a period (not only how it is now)."""

    __tablename__ = "offer_capacity_change"
    __table_args__ = (
        sa.CheckConstraint(in_list("capacity", CAPACITY), name="capacity"),
        sa.Index("ix_offer_capacity_change_offer_at", "offer_id", "changed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    offer_id: int = Field(foreign_key="offer.id")
    capacity: str = Field(max_length=20)
    waitlist_weeks: int | None = Field(default=None)
    changed_at: datetime = Field(sa_type=UTCDateTime)
