"""Step-up: inside the safety net (directly or from a flag), holding or continuing the VCSE
referrals; after the net has closed → 409; scope, permissions and If-Match."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from models import AuditEvent, Flag, Journey, OutboxMessage, Referral, ReferralEvent
from service.flags.operations import raise_flag
from tests.test_flag_support import make_scenario

PROBLEM = "application/problem+json"


def _etag(journey) -> str:
    return f'"journey-{journey.id}-v{journey.version}"'


@pytest.fixture
def inside(app, db, demo):
    # Discharged 1 December 2026: the 90-day net runs to 1 March 2027 (the clock: 4 Jan 2027).
    return make_scenario(app, db, demo, discharged_on=date(2026, 12, 1),
                         safety_net_ends=date(2027, 3, 1))


def _step_up(client, journey, body=None, etag=None):
    return client.post(f"/api/v1/journeys/{journey.id}/step-up",
                       json=body if body is not None else {"trigger": "relapse signs at home"},
                       headers={"If-Match": etag or _etag(journey)})


def _journey(db, journey_id) -> Journey:
    db.expire_all()
    return db.get(Journey, journey_id)


def test_direct_step_up_inside_the_safety_net_keeps_referrals_going(as_user, db, inside, clock):
    journey, referral = inside["journey"], inside["referral"]
    response = _step_up(as_user("coordinator"), journey)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["continuing_referral_ids"] == [referral.id] and body["held_referral_ids"] == []
    assert response.headers["ETag"] == f'"journey-{journey.id}-v{journey.version + 1}"'
    stepped = _journey(db, journey.id)
    assert stepped.stepped_up_at == clock.now()
    assert stepped.step_up_trigger == "relapse signs at home"
    assert stepped.status == "active"
    db.refresh(referral)
    assert referral.status == "in-progress"
    [mail] = db.exec(select(OutboxMessage)).all()
    assert mail.recipient == "mentoring@demo.stepdown.test" and "continues" in mail.payload
    audit = db.exec(select(AuditEvent).where(AuditEvent.action == "step-up")).one()
    assert audit.person_id == inside["person_id"]


def test_step_up_can_hold_the_open_referrals(as_user, db, inside):
    journey, referral = inside["journey"], inside["referral"]
    response = _step_up(as_user("duty"), journey, {"trigger": "admitted",
                                                   "hold_open_referrals": True})
    assert response.status_code == 200
    assert response.get_json()["held_referral_ids"] == [referral.id]
    db.expire_all()
    held = db.get(Referral, referral.id)
    assert (held.status, held.reason_code, held.version) == ("on-hold", "stepped-up", 2)
    [event] = db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)).all()
    assert (event.action, event.from_status, event.to_status, event.reason_code) == (
        "hold", "in-progress", "on-hold", "stepped-up")
    [mail] = db.exec(select(OutboxMessage)).all()
    assert "put on hold" in mail.payload


def test_step_up_from_a_flag_resolves_it(app, as_user, db, inside):
    with app.app_context():
        flag = raise_flag(db, trigger="concern", journey=inside["journey"],
                          referral=inside["referral"], urgency="urgent", category="deterioration")
        db.commit()
    response = _step_up(as_user("duty"), inside["journey"], {"flag_id": flag.id})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["step_up_flag_id"] == flag.id
    db.expire_all()
    resolved = db.get(Flag, flag.id)
    assert (resolved.status, resolved.outcome) == ("resolved", "stepped-up")
    assert _journey(db, inside["journey"].id).step_up_trigger == "flag:concern"


def test_after_the_safety_net_step_up_is_409(app, as_user, db, demo):
    closed = make_scenario(app, db, demo, discharged_on=date(2026, 9, 1),
                           safety_net_ends=date(2026, 11, 30))
    response = _step_up(as_user("coordinator"), closed["journey"])
    assert response.status_code == 409 and response.content_type == PROBLEM
    body = response.get_json()
    assert "safety net closed on 2026-11-30" in body["detail"]
    assert body["reason"] == "safety-net-closed"
    assert _journey(db, closed["journey"].id).stepped_up_at is None
    assert db.exec(select(OutboxMessage)).all() == []


def test_the_last_day_of_the_net_is_still_inside(app, as_user, db, demo, clock):
    edge = make_scenario(app, db, demo, discharged_on=date(2026, 10, 6),
                         safety_net_ends=date(2027, 1, 4))
    clock.at = datetime(2027, 1, 4, 23, 30, tzinfo=UTC)  # still 4 January in London (GMT)
    assert _step_up(as_user("coordinator"), edge["journey"]).status_code == 200


def test_a_finished_or_planned_journey_cannot_be_stepped_up(app, as_user, db, demo):
    planned = make_scenario(app, db, demo, status="planned")
    response = _step_up(as_user("coordinator"), planned["journey"])
    assert response.status_code == 409
    assert response.get_json()["reason"] == "journey-not-active"


def test_step_up_twice_is_409(as_user, db, inside):
    client = as_user("coordinator")
    assert _step_up(client, inside["journey"]).status_code == 200
    journey = _journey(db, inside["journey"].id)
    assert _step_up(client, journey).status_code == 409


def test_step_up_needs_if_match(as_user, db, inside):
    client = as_user("coordinator")
    url = f"/api/v1/journeys/{inside['journey'].id}/step-up"
    assert client.post(url, json={"trigger": "x"}).status_code == 428
    stale = client.post(url, json={"trigger": "x"}, headers={"If-Match": '"journey-1-v99"'})
    assert stale.status_code == 412
    assert _journey(db, inside["journey"].id).stepped_up_at is None


def test_step_up_needs_a_reason(as_user, db, inside):
    response = _step_up(as_user("coordinator"), inside["journey"], {"note": "no trigger"})
    assert response.status_code == 422 and "trigger" in response.get_json()["errors"]


def test_vcse_cannot_step_up_and_other_teams_get_404(as_user, db, inside):
    assert _step_up(as_user("vcse"), inside["journey"]).status_code == 403
    other = _step_up(as_user("safeguarding"), inside["journey"])
    assert other.status_code == 404
    assert _journey(db, inside["journey"].id).stepped_up_at is None


def test_a_flag_of_another_journey_is_refused(app, as_user, db, demo, inside):
    other = make_scenario(app, db, demo, nhs_number="9434765870")
    with app.app_context():
        flag = raise_flag(db, trigger="review-overdue", journey=other["journey"], urgency="routine")
        db.commit()
    response = _step_up(as_user("duty"), inside["journey"], {"flag_id": flag.id})
    assert response.status_code == 422 and "flag_id" in response.get_json()["errors"]
    db.expire_all()
    assert db.get(Flag, flag.id).status == "open"


def test_resolving_stepped_up_outside_the_net_is_409_and_leaves_the_flag(app, as_user, db, demo):
    closed = make_scenario(app, db, demo, discharged_on=date(2026, 9, 1),
                           safety_net_ends=date(2026, 11, 30))
    with app.app_context():
        flag = raise_flag(db, trigger="review-overdue", journey=closed["journey"], urgency="routine")
        db.commit()
    response = as_user("duty").post(f"/api/v1/flags/{flag.id}/resolve",
                                    json={"outcome": "stepped-up"},
                                    headers={"If-Match": f'"flag-{flag.id}-v1"'})
    assert response.status_code == 409
    db.expire_all()
    assert db.get(Flag, flag.id).status == "open"
