"""The append-only audit trail of every read and change of personal data."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import in_list
from models.types import BigIntegerKey, UTCDateTime, utcnow
from models.vocab import AUDIT_OUTCOMES


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.CheckConstraint(in_list("outcome", AUDIT_OUTCOMES), name="outcome"),
        sa.Index("ix_audit_event_person_at", "person_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntegerKey)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_user_id: int | None = Field(default=None, index=True)
    actor_client_id: int | None = Field(default=None)
    actor_role: str | None = Field(default=None, max_length=30)
    actor_organisation_id: int | None = Field(default=None)
    action: str = Field(max_length=60)
    record_type: str = Field(max_length=40)
    record_id: str | None = Field(default=None, max_length=64)
    person_id: int | None = Field(default=None)
    outcome: str = Field(default="allowed", max_length=10)
    request_id: str | None = Field(default=None, max_length=64)


# PostgreSQL refuses UPDATE and DELETE on the audit trail. Used by the migration and by
# create_all (tests) so both build the same guard.
AUDIT_APPEND_ONLY_SQL = (
    """
    CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit_event is append-only';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
    """,
)
AUDIT_APPEND_ONLY_DROP_SQL = (
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
)


@sa.event.listens_for(AuditEvent.__table__, "after_create")
def _audit_append_only(target, connection, **kw):  # noqa: ARG001
    if connection.dialect.name == "postgresql":
        for statement in AUDIT_APPEND_ONLY_SQL:
            connection.execute(sa.text(statement))
