"""The transactional outbox, webhooks and idempotency records."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import BigIntegerKey, UTCDateTime, utcnow
from models.vocab import OUTBOX_STATES


class OutboxMessage(SQLModel, table=True):
    """A notification written in the same transaction as the change that caused it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.CheckConstraint(in_list("status", OUTBOX_STATES), name="status"),
        sa.CheckConstraint(in_list("channel", ("email", "webhook")), name="channel"),
        sa.Index("ix_outbox_message_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntegerKey)
    channel: str = Field(max_length=10)
    topic: str = Field(max_length=60)
    recipient: str = Field(max_length=500)  # a staff email address or a webhook URL
    payload: str = Field(sa_type=sa.Text)  # JSON; never personal data for email
    status: str = Field(default="pending", max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    webhook_id: int | None = Field(default=None, foreign_key="webhook_subscription.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookSubscription(SQLModel, table=True):
    """An API client's callback for referral status changes of its organisation."""

    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    api_client_id: int = Field(foreign_key="api_client.id", index=True)
    url: str = Field(max_length=500)
    secret: str = Field(max_length=200)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a creating POST, replayed for the same Idempotency-Key."""

    __tablename__ = "idempotency_record"

    actor: str = Field(primary_key=True, max_length=60)
    key: str = Field(primary_key=True, max_length=200)
    endpoint: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: str = Field(sa_type=sa.Text)
    response_headers: str = Field(default="{}", sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
