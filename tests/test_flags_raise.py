"""raise_flag: routing, acknowledgement targets, idempotency, audit and outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from models import AuditEvent, Flag, FlagEvent, Membership, OutboxMessage
from service.auth.principal import Principal
from service.flags.operations import raise_flag
from tests.test_flag_support import PERSON_NAME, VALID_NHS_NUMBERS, make_journey, make_offer, make_referral

BRENT = "Brent Community Mental Health Team"


def _principal(db, demo, email: str, kind: str) -> Principal:
    user = demo["users"][email]
    membership = db.exec(select(Membership).where(Membership.user_id == user.id)).first()
    return Principal.for_membership(user, membership, kind)


@pytest.fixture
def journey(app, db, demo):
    with app.app_context():
        j = make_journey(db, demo)
        db.commit()
    return j


def test_raise_routes_to_owning_team_with_event_audit_and_email(app, db, demo, journey, clock):
    with app.app_context():
        flag = raise_flag(db, trigger="review-overdue", journey=journey, urgency="routine")
        db.commit()
    assert flag.routed_team_id == demo["teams"][BRENT].id
    assert flag.also_routed_team_id is None
    assert flag.status == "open" and flag.person_id == journey.person_id
    assert flag.dedupe_key == f"review-overdue:j{journey.id}"
    assert flag.raised_at == clock.now()
    # Monday 09:00 + 2 working days = Wednesday 09:00 (London is on GMT in January).
    assert flag.acknowledgement_due == datetime(2027, 1, 6, 9, 0, tzinfo=UTC)
    events = db.exec(select(FlagEvent).where(FlagEvent.flag_id == flag.id)).all()
    assert [e.kind for e in events] == ["raised"]
    audits = db.exec(select(AuditEvent).where(AuditEvent.record_type == "flag")).all()
    assert [(a.action, a.person_id, a.actor_user_id) for a in audits] == [
        ("raise", journey.person_id, None)]
    mails = db.exec(select(OutboxMessage)).all()
    assert [m.recipient for m in mails] == ["brent-cmht@demo.stepdown.test"]
    payload = json.loads(mails[0].payload)
    assert payload["link"] == f"http://localhost/flags/{flag.id}"
    text = json.dumps(payload)
    for secret in (*PERSON_NAME, VALID_NHS_NUMBERS[0], "1990"):
        assert secret not in text


@pytest.mark.parametrize("urgency, due", [
    ("emergency", datetime(2027, 1, 4, 10, 0, tzinfo=UTC)),
    ("urgent", datetime(2027, 1, 4, 13, 0, tzinfo=UTC)),
    ("routine", datetime(2027, 1, 6, 9, 0, tzinfo=UTC)),
])
def test_acknowledgement_targets(app, db, journey, urgency, due):
    with app.app_context():
        flag = raise_flag(db, trigger="concern", journey=journey, urgency=urgency,
                          category="deterioration")
    assert flag.acknowledgement_due == due


def test_safeguarding_also_routes_to_the_safeguarding_team(app, db, demo, journey):
    vcse = _principal(db, demo, "vcse@demo.stepdown.test", "vcse")
    with app.app_context():
        flag = raise_flag(db, trigger="concern", journey=journey, urgency="urgent",
                          category="safeguarding", description="Worried about home", raised_by=vcse)
        db.commit()
    assert flag.routed_team_id == demo["teams"][BRENT].id
    assert flag.also_routed_team_id == demo["teams"]["Safeguarding Team"].id
    assert flag.raised_by_user_id == demo["users"]["vcse@demo.stepdown.test"].id
    assert flag.raised_by_organisation_id == demo["organisations"]["vcse-a"].id
    recipients = sorted(m.recipient for m in db.exec(select(OutboxMessage)).all())
    assert recipients == ["brent-cmht@demo.stepdown.test", "safeguarding-a@demo.stepdown.test"]
    # The free-text description never goes into the email.
    assert all("home" not in m.payload for m in db.exec(select(OutboxMessage)).all())


def test_same_trigger_twice_is_one_flag_with_history(app, db, demo, journey):
    offer = make_offer(db, demo)
    referral = make_referral(db, demo, journey, offer)
    db.commit()
    with app.app_context():
        first = raise_flag(db, trigger="not-answered", journey=journey, referral=referral,
                           urgency="routine")
        second = raise_flag(db, trigger="not-answered", journey=journey, referral=referral,
                            urgency="routine")
        db.commit()
    assert first.id == second.id
    assert first.dedupe_key == f"not-answered:r{referral.id}"
    assert db.exec(select(Flag)).all() == [first]
    kinds = [e.kind for e in db.exec(select(FlagEvent).order_by(FlagEvent.id)).all()]
    assert kinds == ["raised", "re-triggered"]
    assert len(db.exec(select(OutboxMessage)).all()) == 1  # no second email for a repeat


def test_more_urgent_retrigger_upgrades_and_tells_the_team_again(app, db, demo, journey, clock):
    offer = make_offer(db, demo)
    referral = make_referral(db, demo, journey, offer)
    with app.app_context():
        flag = raise_flag(db, trigger="concern", journey=journey, referral=referral,
                          urgency="routine", category="deterioration")
        clock.advance(minutes=30)
        again = raise_flag(db, trigger="concern", journey=journey, referral=referral,
                           urgency="emergency", category="safeguarding")
        db.commit()
    assert again.id == flag.id
    assert again.urgency == "emergency" and again.version == 2
    assert again.acknowledgement_due == datetime(2027, 1, 4, 10, 30, tzinfo=UTC)
    assert again.also_routed_team_id == demo["teams"]["Safeguarding Team"].id
    assert len(db.exec(select(OutboxMessage)).all()) == 3  # raised (1) + upgraded (2 teams)


def test_a_resolved_flag_does_not_block_a_new_one(app, db, journey):
    with app.app_context():
        first = raise_flag(db, trigger="review-overdue", journey=journey, urgency="routine")
        first.status, first.outcome = "resolved", "no-action"
        db.add(first)
        db.flush()
        second = raise_flag(db, trigger="review-overdue", journey=journey, urgency="routine")
        db.commit()
    assert second.id != first.id


def test_unique_index_race_becomes_a_retrigger(app, db, journey, monkeypatch):
    """A concurrent insert that wins the race: our INSERT fails in the SAVEPOINT, we re-read."""
    from service.flags import operations

    with app.app_context():
        winner = raise_flag(db, trigger="review-overdue", journey=journey, urgency="routine")
        db.commit()
        calls = {"n": 0}
        real = operations._find_unresolved

        def stale_first_read(session, key):
            calls["n"] += 1
            return None if calls["n"] == 1 else real(session, key)

        monkeypatch.setattr(operations, "_find_unresolved", stale_first_read)
        loser = raise_flag(db, trigger="review-overdue", journey=journey, urgency="routine")
        db.commit()
    assert loser.id == winner.id
    assert calls["n"] == 2
    kinds = [e.kind for e in db.exec(select(FlagEvent).order_by(FlagEvent.id)).all()]
    assert kinds == ["raised", "re-triggered"]


def test_bad_arguments_are_refused(app, db, journey):
    with app.app_context():
        for kwargs in ({"trigger": "nope", "urgency": "routine"},
                       {"trigger": "concern", "urgency": "soon"},
                       {"trigger": "concern", "urgency": "routine", "category": "other"}):
            with pytest.raises(ValueError):
                raise_flag(db, journey=journey, **kwargs)
    assert db.exec(select(Flag)).all() == []
