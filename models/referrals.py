"""Referrals (FHIR ServiceRequest + Task) with their handover, events, contacts and notes."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import BigIntegerKey, UTCDateTime, utcnow
from models.vocab import (
    ALTERNATIVE_BASES,
    CONTACT_OUTCOMES,
    NOTE_KINDS,
    OPEN_REFERRAL_STATES,
    REFERRAL_STATES,
)

_OPEN = in_list("status", OPEN_REFERRAL_STATES)


class Referral(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        sa.CheckConstraint(in_list("status", REFERRAL_STATES), name="status"),
        sa.CheckConstraint(
            "status NOT IN ('rejected', 'cancelled', 'on-hold', 'failed') OR reason_code IS NOT NULL",
            name="reason_required",
        ),
        sa.CheckConstraint(
            f"alternative_basis IS NULL OR {in_list('alternative_basis', ALTERNATIVE_BASES)}",
            name="alternative_basis",
        ),
        # At most one open referral per person per offer, on both engines.
        sa.Index(
            "uq_referral_open_person_offer",
            "person_id",
            "offer_id",
            unique=True,
            postgresql_where=sa.text(_OPEN),
            sqlite_where=sa.text(_OPEN),
        ),
        # The VCSE inbox lists sent referrals newest-sent first (drafts have no sent_at).
        sa.Index("ix_referral_inbox", "receiving_organisation_id", "sent_at", "id"),
        sa.Index("ix_referral_outbox", "referring_team_id", "created_at", "id"),
        sa.Index("ix_referral_status_sent", "status", "sent_at"),
        # The sweep's "no first contact within 10 working days" timer.
        sa.Index(
            "ix_referral_awaiting_first_contact",
            "status",
            "decided_at",
            postgresql_where=sa.text("first_contact_at IS NULL"),
            sqlite_where=sa.text("first_contact_at IS NULL"),
        ),
        # The referrals whose flow row waits to be rewritten (service.flows.facts).
        sa.Index(
            "ix_referral_flows_stale",
            "id",
            postgresql_where=sa.text("flows_stale"),
            sqlite_where=sa.text("flows_stale"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(foreign_key="journey.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    offer_id: int = Field(foreign_key="offer.id", index=True)
    referring_team_id: int = Field(foreign_key="team.id")
    receiving_organisation_id: int = Field(foreign_key="organisation.id")
    status: str = Field(default="draft", max_length=20)
    reason_code: str | None = Field(default=None, max_length=40)
    reason_text: str | None = Field(default=None, max_length=2000)
    waitlist: bool = Field(default=False)
    expected_start: date | None = Field(default=None)
    assigned_to_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    # Sharing basis: consent, or a recorded alternative with a justification.
    alternative_basis: str | None = Field(default=None, max_length=30)
    alternative_justification: str | None = Field(default=None, max_length=2000)
    # The handover: what a non-clinical worker needs.
    # Snapshot at send: the three About me answers (4000 characters each) under their headings.
    about_me: str | None = Field(default=None, max_length=12100)
    goals: str | None = Field(default=None, max_length=4000)
    relapse_signs: str | None = Field(default=None, max_length=4000)
    crisis_plan: str | None = Field(default=None, max_length=4000)
    risk_summary: str | None = Field(default=None, max_length=4000)
    contact_in_hours: str | None = Field(default=None, max_length=500)
    contact_out_of_hours: str | None = Field(default=None, max_length=500)
    version: int = Field(default=1)
    created_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_contact_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set by every change the flows report could see (status, decision, first contact, the
    # person's equality fields) in the change's own UPDATE; cleared when service.flows.facts
    # rewrites the referral's flow row and counts (the worker, or the report before it reads).
    flows_stale: bool = Field(default=False, sa_column_kwargs={"server_default": sa.text("false")})


class ReferralEvent(SQLModel, table=True):
    """Append-only history of a referral's states."""

    __tablename__ = "referral_event"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntegerKey)
    referral_id: int = Field(foreign_key="referral.id", index=True)
    action: str = Field(max_length=20)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    reason_code: str | None = Field(default=None, max_length=40)
    reason_text: str | None = Field(default=None, max_length=2000)
    actor_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    actor_client_id: int | None = Field(default=None, foreign_key="api_client.id")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Contact(SQLModel, table=True):
    """A recorded attempt or session with the person."""

    __tablename__ = "contact"
    __table_args__ = (
        sa.CheckConstraint(in_list("outcome", CONTACT_OUTCOMES), name="outcome"),
        sa.Index("ix_contact_referral_at", "referral_id", "happened_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    referral_id: int = Field(foreign_key="referral.id")
    outcome: str = Field(max_length=20)
    happened_at: datetime = Field(sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=4000)
    recorded_by_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Note(SQLModel, table=True):
    """A note on a journey or referral, attributed with the author's role."""

    __tablename__ = "note"
    __table_args__ = (sa.CheckConstraint(in_list("kind", NOTE_KINDS), name="kind"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(foreign_key="journey.id", index=True)
    referral_id: int | None = Field(default=None, foreign_key="referral.id", index=True)
    author_user_id: int | None = Field(default=None, foreign_key="app_user.id")
    author_role: str = Field(max_length=30)
    author_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    kind: str = Field(default="note", max_length=20)
    text: str = Field(max_length=8000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
