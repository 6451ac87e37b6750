"""enqueue_email: written in the caller's transaction, a link and no personal data."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from models import OutboxMessage
from service.jobs.outbox import enqueue_email


def test_enqueue_writes_a_pending_email_in_the_callers_transaction(app, db, clock):
    with app.app_context():
        message = enqueue_email(db, to="Team@Example.org", topic="referral.sent",
                                subject="Stepdown: a new referral is waiting", link_path="/referrals/7")
        db.rollback()  # the caller's change failed: no email either
        assert db.exec(select(OutboxMessage)).all() == []
        message = enqueue_email(db, to="Team@Example.org", topic="referral.sent",
                                subject="Stepdown: a new referral is waiting", link_path="/referrals/7")
        db.commit()
    stored = db.exec(select(OutboxMessage)).one()
    assert stored.id == message.id
    assert (stored.channel, stored.status, stored.attempts) == ("email", "pending", 0)
    assert stored.recipient == "team@example.org"
    assert stored.next_attempt_at == clock.now()
    payload = json.loads(stored.payload)
    assert payload["subject"] == "Stepdown: a new referral is waiting"
    assert payload["link"] == "http://localhost/referrals/7"
    assert "http://localhost/referrals/7" in payload["body"]


@pytest.mark.parametrize("subject", ["Flag for 943 476 5919", "Born 17/05/1990"])
def test_subjects_that_look_personal_are_refused(app, db, subject):
    with app.app_context(), pytest.raises(ValueError):
        enqueue_email(db, to="a@example.org", topic="x", subject=subject, link_path="/flags/1")


def test_link_path_must_be_a_path(app, db):
    with app.app_context(), pytest.raises(ValueError):
        enqueue_email(db, to="a@example.org", topic="x", subject="s", link_path="https://evil")
