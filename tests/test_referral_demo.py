"""Demo journeys and referrals: every referral state, consistent with the lifecycle, idempotent."""

from __future__ import annotations

from sqlmodel import select

from models import Journey, Referral, ReferralEvent
from models.vocab import REFERRAL_STATES
from service.people.demo import load_demo_offers_and_people
from service.referrals.demo import load_demo_journeys_and_referrals


def test_demo_has_every_state_and_loads_twice_without_change(app, db, demo, as_user):
    with app.app_context():
        base = {**demo, **load_demo_offers_and_people(db, demo)}
        load_demo_journeys_and_referrals(db, base)
        db.commit()
        counts = (len(db.exec(select(Referral)).all()), len(db.exec(select(Journey)).all()),
                  len(db.exec(select(ReferralEvent)).all()))
        load_demo_journeys_and_referrals(db, base)
        db.commit()
        assert counts == (len(db.exec(select(Referral)).all()), len(db.exec(select(Journey)).all()),
                          len(db.exec(select(ReferralEvent)).all()))
    referrals = db.exec(select(Referral)).all()
    assert {r.status for r in referrals} == set(REFERRAL_STATES)
    for referral in referrals:  # the events replay to the current status
        events = db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)
                         .order_by(ReferralEvent.at, ReferralEvent.id)).all()
        assert events[-1].to_status == referral.status
        assert referral.version == len(events)
    inbox = as_user("vcse").get("/api/v1/referrals").get_json()["items"]
    assert inbox and all(item["offer"]["organisation_id"] == demo["organisations"]["vcse-a"].id
                         for item in inbox)
    assert as_user("coordinator").get(f"/api/v1/referrals/{inbox[0]['id']}").status_code == 200
