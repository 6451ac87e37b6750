"""The timer sweep: each trigger raises exactly one flag, routed right; escalation once; working
days across Easter 2027; the CLI; and on PostgreSQL, parallel sweeps raise each flag once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from models import Contact, Flag, FlagEvent, Journey, OutboxMessage
from service.flags.operations import raise_flag
from service.jobs.sweep import Sweep, first_contact_cutoff, response_cutoff
from tests.test_flag_support import make_journey, make_offer, make_referral

BRENT = "Brent Community Mental Health Team"


def _sweep(app, as_of: datetime, batch_size: int = 500):
    with app.app_context():
        from service.jobs.cli import session_factory

        return Sweep(session_factory, as_of, batch_size=batch_size).run()


def _flags(db, trigger: str | None = None) -> list[Flag]:
    db.expire_all()
    query = select(Flag).order_by(Flag.id)
    if trigger:
        query = query.where(Flag.trigger == trigger)
    return list(db.exec(query).all())


def _at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the calendar ----------------------------------------------------------------------------

def test_response_cutoff_skips_the_easter_2027_bank_holidays():
    # Good Friday 26 March, Easter Monday 29 March 2027. Sent Thursday 25 March with a target of
    # 2 working days: Tuesday 30 is day 1, Wednesday 31 day 2; overdue from Thursday 1 April.
    # So on Wed 31 March only referrals sent on or before Wed 24 March are overdue...
    assert response_cutoff(date(2027, 3, 31), 2) == _at(2027, 3, 25, 0, 0)  # GMT: London == UTC
    # On Thursday 1 April (BST from 28 March: London midnight is 23:00 UTC) everything sent up
    # to Easter Monday is overdue: Good Friday, the weekend and Easter Monday all count from
    # Tuesday 30, so their second working day is Wednesday 31 too.
    assert response_cutoff(date(2027, 4, 1), 2) == _at(2027, 3, 29, 23, 0)
    assert response_cutoff(date(2027, 4, 1), 1) == _at(2027, 3, 30, 23, 0)
    assert response_cutoff(date(2027, 4, 1), 0) == _at(2027, 3, 31, 23, 0)


def test_first_contact_cutoff_is_ten_working_days():
    # Accepted Monday 4 Jan 2027: 10 working days end Monday 18 Jan; overdue from Tuesday 19.
    assert first_contact_cutoff(date(2027, 1, 18)) == _at(2027, 1, 4, 0, 0)
    assert first_contact_cutoff(date(2027, 1, 19)) == _at(2027, 1, 5, 0, 0)


# --- each timer raises exactly one flag ------------------------------------------------------

@pytest.fixture
def world(app, db, demo):
    with app.app_context():
        journey = make_journey(db, demo, review_due=date(2027, 1, 20))
        offer = make_offer(db, demo, response_target_days=2)
        db.commit()
    return {"journey": journey, "offer": offer}


def test_not_answered_across_easter(app, db, demo, world):
    sent = _at(2027, 3, 25, 15, 0)  # Thursday before Good Friday
    with app.app_context():
        referral = make_referral(db, demo, world["journey"], world["offer"], status="requested",
                                 sent_at=sent)
        db.commit()
    world["journey"].review_due = None
    db.add(world["journey"])
    db.commit()
    assert _sweep(app, _at(2027, 3, 31, 16, 0)).raised["not-answered"] == 0  # Wed: still in time
    assert _flags(db) == []
    summary = _sweep(app, _at(2027, 3, 31, 23, 30))  # 00:30 Thursday 1 April in London (BST)
    assert summary.raised["not-answered"] == 1
    [flag] = _flags(db)
    assert (flag.trigger, flag.referral_id, flag.urgency) == ("not-answered", referral.id, "routine")
    assert flag.routed_team_id == demo["teams"][BRENT].id
    assert flag.raised_at == _at(2027, 3, 31, 23, 30)  # the sweep's --as-of instant
    # Running again raises nothing new, and adds no history either.
    assert _sweep(app, _at(2027, 4, 1, 12, 0)).raised["not-answered"] == 0
    assert len(_flags(db)) == 1
    assert len(db.exec(select(FlagEvent)).all()) == 1


def test_an_answered_referral_raises_nothing(app, db, demo, world):
    with app.app_context():
        make_referral(db, demo, world["journey"], world["offer"], status="accepted",
                      sent_at=_at(2026, 12, 1, 10, 0), decided_at=_at(2027, 1, 4, 10, 0),
                      first_contact_at=_at(2027, 1, 5, 10, 0))
        db.commit()
    summary = _sweep(app, _at(2027, 1, 19, 9, 0))
    assert summary.raised == {"not-answered": 0, "no-first-contact": 0, "missed-contacts": 0,
                              "review-overdue": 0}


def test_no_first_contact_after_ten_working_days(app, db, demo, world):
    with app.app_context():
        referral = make_referral(db, demo, world["journey"], world["offer"], status="accepted",
                                 sent_at=_at(2026, 12, 30, 10, 0), decided_at=_at(2027, 1, 4, 11, 0))
        db.commit()
    assert _sweep(app, _at(2027, 1, 18, 20, 0)).raised["no-first-contact"] == 0
    assert _sweep(app, _at(2027, 1, 19, 8, 0)).raised["no-first-contact"] == 1
    assert _sweep(app, _at(2027, 1, 19, 9, 0)).raised["no-first-contact"] == 0
    [flag] = _flags(db, "no-first-contact")
    assert flag.referral_id == referral.id and flag.dedupe_key == f"no-first-contact:r{referral.id}"


def _contacts(db, referral, outcomes, start=_at(2027, 1, 5, 10, 0)):
    for i, outcome in enumerate(outcomes):
        db.add(Contact(referral_id=referral.id, outcome=outcome,
                       happened_at=start + timedelta(days=i), created_at=start + timedelta(days=i)))
    db.commit()


def test_missed_contacts_latest_three(app, db, demo, world):
    with app.app_context():
        broken = make_referral(db, demo, world["journey"], world["offer"], status="in-progress",
                               sent_at=_at(2027, 1, 4, 9, 0), decided_at=_at(2027, 1, 4, 9, 0),
                               first_contact_at=_at(2027, 1, 4, 12, 0))
        offer2 = make_offer(db, demo, name="Walking group")
        missed = make_referral(db, demo, world["journey"], offer2, status="in-progress",
                               sent_at=_at(2027, 1, 4, 9, 0), decided_at=_at(2027, 1, 4, 9, 0),
                               first_contact_at=_at(2027, 1, 4, 12, 0), consent=False)
        db.commit()
    # Three misses, then an attended contact: the run is broken.
    _contacts(db, broken, ["did-not-attend", "could-not-contact", "did-not-attend", "attended"])
    # An old attended contact, then three misses in a row.
    _contacts(db, missed, ["attended", "did-not-attend", "could-not-contact", "did-not-attend"])
    summary = _sweep(app, _at(2027, 1, 12, 9, 0))
    assert summary.raised["missed-contacts"] == 1
    [flag] = _flags(db, "missed-contacts")
    assert flag.referral_id == missed.id
    assert _sweep(app, _at(2027, 1, 12, 10, 0)).raised["missed-contacts"] == 0
    # Once resolved, the same run does not re-raise; a further missed contact does.
    flag.status, flag.outcome, flag.resolved_at = "resolved", "advice-given", _at(2027, 1, 12, 11, 0)
    db.add(flag)
    db.commit()
    assert _sweep(app, _at(2027, 1, 13, 9, 0)).raised["missed-contacts"] == 0
    _contacts(db, missed, ["did-not-attend"], start=_at(2027, 1, 14, 10, 0))
    assert _sweep(app, _at(2027, 1, 15, 9, 0)).raised["missed-contacts"] == 1
    assert len(_flags(db, "missed-contacts")) == 2


def test_review_overdue_once_per_review_date(app, db, world):
    assert _sweep(app, _at(2027, 1, 20, 16, 0)).raised["review-overdue"] == 0  # due today
    assert _sweep(app, _at(2027, 1, 21, 9, 0)).raised["review-overdue"] == 1
    assert _sweep(app, _at(2027, 1, 22, 9, 0)).raised["review-overdue"] == 0
    [flag] = _flags(db, "review-overdue")
    assert flag.referral_id is None and flag.dedupe_key == f"review-overdue:j{world['journey'].id}"
    flag.status, flag.outcome = "resolved", "no-action"
    db.add(flag)
    db.commit()
    assert _sweep(app, _at(2027, 1, 25, 9, 0)).raised["review-overdue"] == 0  # same review date
    journey = db.get(Journey, world["journey"].id)
    journey.review_due = date(2027, 2, 1)
    db.add(journey)
    db.commit()
    assert _sweep(app, _at(2027, 2, 2, 9, 0)).raised["review-overdue"] == 1  # a new review date


def test_finished_and_cancelled_journeys_are_not_reviewed(app, db, demo):
    with app.app_context():
        make_journey(db, demo, status="cancelled", review_due=date(2027, 1, 1))
        db.commit()
    assert _sweep(app, _at(2027, 1, 21, 9, 0)).raised["review-overdue"] == 0


def test_the_safety_net_elapsing_finishes_the_journey(app, db, demo):
    with app.app_context():
        journey = make_journey(db, demo, discharged_on=date(2026, 10, 1),
                               safety_net_ends=date(2026, 12, 30))
        db.commit()
    assert _sweep(app, _at(2026, 12, 30, 12, 0)).finished_journeys == 0
    assert _sweep(app, _at(2026, 12, 31, 12, 0)).finished_journeys == 1
    db.expire_all()
    assert db.get(Journey, journey.id).status == "finished"


# --- escalation --------------------------------------------------------------------------------

def test_open_flags_past_target_are_escalated_once_to_the_managers(app, db, demo, world):
    with app.app_context():
        emergency = raise_flag(db, trigger="concern", journey=world["journey"], urgency="emergency",
                               category="risk-to-self")
        routine = raise_flag(db, trigger="review-overdue", journey=world["journey"],
                             urgency="routine")
        db.commit()
    before = len(db.exec(select(OutboxMessage)).all())
    assert _sweep(app, _at(2027, 1, 4, 9, 59)).escalated == 0
    assert _sweep(app, _at(2027, 1, 4, 10, 1)).escalated == 1
    assert _sweep(app, _at(2027, 1, 4, 11, 0)).escalated == 0  # once and only once
    db.expire_all()
    assert db.get(Flag, emergency.id).escalated_at == _at(2027, 1, 4, 10, 1)
    assert db.get(Flag, routine.id).escalated_at is None
    mails = db.exec(select(OutboxMessage).where(OutboxMessage.topic == "flag.escalated")).all()
    # The Brent team's manager (duty@ is the team manager in the demo).
    assert [m.recipient for m in mails] == ["duty@demo.stepdown.test"]
    assert len(db.exec(select(OutboxMessage)).all()) == before + 1
    kinds = [e.kind for e in db.exec(select(FlagEvent).where(FlagEvent.flag_id == emergency.id))]
    assert kinds == ["raised", "escalated"]
    # Routine: 2 working days; acknowledged flags are not escalated.
    flag = db.get(Flag, routine.id)
    flag.status = "acknowledged"
    db.add(flag)
    db.commit()
    assert _sweep(app, _at(2027, 1, 8, 9, 0)).escalated == 0


def test_escalating_many_in_batches(app, db, demo):
    with app.app_context():
        for i in range(7):
            journey = make_journey(db, demo, nhs_number=f"{9100000000 + i:010d}")
            raise_flag(db, trigger="review-overdue", journey=journey, urgency="emergency")
        db.commit()
    assert _sweep(app, _at(2027, 1, 4, 12, 0), batch_size=3).escalated == 7
    assert _sweep(app, _at(2027, 1, 4, 13, 0), batch_size=3).escalated == 0


# --- the command --------------------------------------------------------------------------------

def test_cli_sweep_as_of_prints_a_summary(app, db, demo, world):
    with app.app_context():
        make_referral(db, demo, world["journey"], world["offer"], status="requested",
                      sent_at=_at(2027, 1, 4, 10, 0))
        db.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sweep", "--as-of", "2027-01-25T09:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "sweep as of 2027-01-25T09:00:00+00:00" in result.output
    assert "not-answered       1 flag(s) raised" in result.output
    assert "review-overdue     1 flag(s) raised" in result.output
    again = runner.invoke(args=["sweep", "--as-of", "2027-01-25T09:00:00Z"])
    assert "not-answered       0 flag(s) raised" in again.output
    bad = runner.invoke(args=["sweep", "--as-of", "next tuesday"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output
    naive = runner.invoke(args=["sweep", "--as-of", "2027-01-25T09:00:00"])
    assert naive.exit_code != 0


def test_cli_shows_progress_on_long_runs(app, db, demo):
    with app.app_context():
        offer = make_offer(db, demo, response_target_days=1)
        for i in range(5):
            journey = make_journey(db, demo, nhs_number=f"{9200000000 + i:010d}")
            make_referral(db, demo, journey, offer, status="requested",
                          sent_at=_at(2027, 1, 4, 10, 0), consent=False)
        db.commit()
    result = app.test_cli_runner().invoke(
        args=["sweep", "--as-of", "2027-01-12T09:00:00Z", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "sweeping 5 candidates" in result.output
    assert "not-answered       5 flag(s) raised" in result.output


# --- parallel sweeps on PostgreSQL ------------------------------------------------------------

@pytest.mark.postgres
def test_parallel_sweeps_raise_each_flag_once(app, db, demo):
    with app.app_context():
        offer = make_offer(db, demo, response_target_days=1)
        for i in range(60):
            journey = make_journey(db, demo, nhs_number=f"{9300000000 + i:010d}",
                                   review_due=date(2027, 1, 5))
            make_referral(db, demo, journey, offer, status="requested",
                          sent_at=_at(2027, 1, 4, 10, 0), consent=False)
            raise_flag(db, trigger="concern", journey=journey, urgency="emergency",
                       category="deterioration")
        db.commit()
        engine = app.extensions["stepdown.engine"]

    as_of = _at(2027, 1, 12, 9, 0)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def run():
        try:
            with app.app_context():
                sweep = Sweep(lambda: Session(engine, expire_on_commit=False), as_of, batch_size=7)
                found = sweep.candidates()
                barrier.wait(timeout=30)  # all four hold the same candidates, then race
                results.append(sweep.process(found))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sum(r.raised["not-answered"] for r in results) == 60
    assert sum(r.raised["review-overdue"] for r in results) == 60
    assert sum(r.escalated for r in results) == 60
    db.expire_all()
    flags = db.exec(select(Flag)).all()
    assert len([f for f in flags if f.trigger == "not-answered"]) == 60
    assert len([f for f in flags if f.trigger == "review-overdue"]) == 60
    # Nothing re-triggered, nothing escalated twice, one escalation email each.
    events = db.exec(select(FlagEvent)).all()
    assert not [e for e in events if e.kind == "re-triggered"]
    assert len([e for e in events if e.kind == "escalated"]) == 60
    assert len(db.exec(select(OutboxMessage).where(
        OutboxMessage.topic == "flag.escalated")).all()) == 60
