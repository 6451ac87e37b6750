"""The audit trail: written for admin reads and changes, append-only on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import AuditEvent


def test_admin_read_and_change_write_audit_events(as_user, demo, db):
    admin = as_user("admin")
    org_id = demo["organisations"]["trust-a"].id
    read = admin.get(f"/api/v1/organisations/{org_id}")
    changed = admin.patch(f"/api/v1/organisations/{org_id}", json={"borough": "Brent"},
                          headers={"If-Match": read.headers["ETag"]})
    assert changed.status_code == 200
    events = db.exec(select(AuditEvent).where(AuditEvent.record_type == "organisation")).all()
    actions = [(e.action, e.record_id, e.outcome) for e in events]
    assert ("read", str(org_id), "allowed") in actions
    assert ("update", str(org_id), "allowed") in actions
    update = next(e for e in events if e.action == "update")
    assert update.actor_user_id == demo["users"]["admin@demo.stepdown.test"].id
    assert update.actor_role == "org_admin"
    assert update.request_id


def test_denied_admin_attempt_is_audited_even_though_request_fails(as_user, demo, db):
    admin_b = as_user("admin-b")
    org_a = demo["organisations"]["trust-a"].id
    assert admin_b.patch(f"/api/v1/organisations/{org_a}", json={"name": "X"}).status_code == 404
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [(e.action, e.record_id) for e in denied] == [("admin", str(org_a))]


@pytest.mark.postgres
def test_audit_events_cannot_be_updated_or_deleted(as_user, demo, db_engine):
    as_user("admin").get("/api/v1/organisations")
    with db_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM audit_event")).scalar() > 0
    for statement in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db_engine.begin() as connection:
                connection.execute(sa.text(statement))
