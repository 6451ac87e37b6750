"""Each sent referral's flow row (models.flows.ReferralFlow) follows the operations that move
it: send, accept, contacts, closing, person edits. Each change marks the referral in its own
transaction (nothing of the flows on the request path); the worker, or the report before it
reads, rewrites the marked rows and moves the counts; a rollback keeps nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import FlowDay, FlowMonth, Referral, ReferralFlow
from service.db import engine
from service.flows.facts import rebuild_flow_counts, refresh_flows, refresh_stale_flows
from service.jobs.worker import refresh_flows as worker_refresh_flows
from tests.test_referral_support import (
    act,
    create_referral,
    etag,
    give_consent,
    make_journey,
    make_person,
    ok,
    sent_referral,
    signed_in,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _row(db, referral_id: int) -> ReferralFlow | None:
    """The row as the report reads it: after refreshing the marked referrals."""
    db.expire_all()
    refresh_stale_flows(db, wait=True)
    db.commit()
    return db.get(ReferralFlow, referral_id)


def _marked(db) -> list[int]:
    db.expire_all()
    return list(db.exec(select(Referral.id).where(Referral.flows_stale)).all())


def _contact(w, referral_id: int, outcome: str, when: datetime):
    return ok(w.vcse.post(f"/api/v1/referrals/{referral_id}/contacts", json={
        "outcome": outcome, "happened_at": when.isoformat()}), 201)


def test_a_draft_has_no_row_and_sending_makes_one(world):
    draft = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)
    assert _row(world.db, draft["id"]) is None
    ok(act(world.coordinator, draft["id"], "send"))
    row = _row(world.db, draft["id"])
    assert row is not None
    assert (row.sent_on, row.sent_month) == (date(2027, 1, 4), 202701)  # the clock's Monday
    assert (row.outcome, row.reason, row.decision_days, row.contacted) == (
        "awaiting", None, None, False)
    assert (row.offer_id, row.receiving_organisation_id, row.referring_team_id) == (
        world.offer.id, world.offer.organisation_id, world.journey.team_id)
    assert row.referring_organisation_id == world.demo["organisations"]["trust-a"].id


def test_row_follows_acceptance_first_attended_contact_and_completion(world):
    rid = sent_referral(world)
    world.later(days=3)  # Monday -> Thursday: three working days
    ok(act(world.vcse, rid, "accept", {"waitlist": True,
                                       "expected_start": date(2027, 1, 20).isoformat()}))
    row = _row(world.db, rid)
    assert (row.outcome, row.decision_days, row.waitlist, row.contacted) == (
        "in-progress", 3, True, False)
    world.later(days=4)  # Monday 11 January
    now = world.clock.now()
    _contact(world, rid, "did-not-attend", now - timedelta(days=1))
    assert _row(world.db, rid).contacted is False  # an attempt is not a first contact
    _contact(world, rid, "attended", now - timedelta(hours=1))
    assert (_row(world.db, rid).contacted, _row(world.db, rid).contact_days) == (True, 2)
    # An earlier attended contact recorded later wins: Friday 8th is one working day.
    _contact(world, rid, "attended", datetime(2027, 1, 8, 10, tzinfo=UTC))
    assert _row(world.db, rid).contact_days == 1
    ok(act(world.vcse, rid, "start"))
    ok(act(world.vcse, rid, "complete"))
    assert _row(world.db, rid).outcome == "completed"


def test_row_follows_decline_and_withdrawal(world):
    declined = sent_referral(world)
    ok(act(world.vcse, declined, "decline", {"reason_code": "not-eligible"}))
    row = _row(world.db, declined)
    assert (row.outcome, row.reason, row.decision_days) == ("declined", "not-eligible", 0)
    withdrawn = sent_referral(world)  # the declined one is closed: a new one may open
    ok(act(world.coordinator, withdrawn, "cancel", {"reason_code": "no-longer-needed"}))
    row = _row(world.db, withdrawn)
    assert (row.outcome, row.reason, row.decision_days) == (
        "withdrawn", "no-longer-needed", None)


def test_person_edits_move_the_equality_fields_and_age_band(world):
    rid = sent_referral(world)
    before = (_row(world.db, rid).borough, _row(world.db, rid).age_band)
    etag = world.coordinator.get(f"/api/v1/people/{world.person.id}").headers["ETag"]
    ok(world.coordinator.patch(f"/api/v1/people/{world.person.id}", json={
        "borough": "Camden", "sex": "female", "ethnic_category": "N",
        "date_of_birth": "2010-03-01"}, headers={"If-Match": etag}))
    after = _row(world.db, rid)
    assert (after.borough, after.sex, after.ethnic_category, after.age_band) == (
        "Camden", "female", "N", "0-17")
    assert before != (after.borough, after.age_band)


def test_a_refused_change_leaves_the_row_as_it_was(world):
    rid = sent_referral(world)
    stale = act(world.vcse, rid, "accept", if_match='"referral-0-v0"')
    assert stale.status_code == 412
    assert _row(world.db, rid).outcome == "awaiting"


def test_refresh_rewrites_a_stale_row(world):
    rid = sent_referral(world)
    db = world.db
    row = _row(db, rid)
    row.outcome, row.borough = "completed", "Nowhere"
    db.add(row)
    db.commit()
    refresh_flows(db, [rid])
    db.commit()
    assert (_row(db, rid).outcome, _row(db, rid).borough) == ("awaiting", world.person.borough
                                                              or "not-recorded")


@pytest.mark.postgres
def test_parallel_decisions_in_one_month_keep_the_counts_exact(world, app, db):
    """Twelve decisions at once on referrals sharing their month, team and offer counts, then
    four workers and a report refreshing at once (in batches of two): no lost update, no
    deadlock, every referral refreshed, and the counts still equal a recount."""
    referrals = [sent_referral(world)]
    for seed in range(2, 13):
        person = make_person(db, world.demo, seed=seed)
        give_consent(db, world.demo, person, "vcse-a", world.clock)
        journey = make_journey(db, world.demo, person, world.clock)
        body = ok(create_referral(world.coordinator, journey.id, world.offer.id), 201)
        ok(act(world.coordinator, body["id"], "send"))
        referrals.append(body["id"])
    tags = {rid: etag(world.vcse, rid) for rid in referrals}
    clients = [signed_in(app, "vcse@demo.stepdown.test") for _ in referrals]
    barrier = threading.Barrier(len(referrals))

    def decide(pair):
        (rid, client), accept = pair, pair[0] % 2 == 0
        barrier.wait()
        action, body = ("accept", {}) if accept else ("decline", {"reason_code": "no-capacity"})
        return client.post(f"/api/v1/referrals/{rid}/{action}", json=body,
                           headers={"If-Match": tags[rid]})

    with ThreadPoolExecutor(max_workers=len(referrals)) as pool:
        responses = list(pool.map(decide, zip(referrals, clients, strict=True)))
    assert [r.status_code for r in responses] == [200] * len(referrals)
    assert sorted(_marked(db)) == sorted(referrals)
    with app.app_context():
        bind = engine()
    start = threading.Barrier(5)

    def refresher(report: bool) -> None:
        start.wait()
        if report:
            with Session(bind) as own:
                refresh_stale_flows(own, wait=True, batch=2)
                own.commit()
        else:
            worker_refresh_flows(lambda: Session(bind, expire_on_commit=False), batch=2)

    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(refresher, [False, False, False, False, True]))
    assert _marked(db) == []
    outcomes = {r.outcome for r in db.exec(select(ReferralFlow)).all()}
    assert outcomes == {"in-progress", "declined"}
    kept = _counts(db)
    rebuild_flow_counts(db)
    assert _counts(db) == kept
    declined = sum(n for m, a, _b, n in kept[0] if m == "outcome" and a == "declined")
    assert declined == sum(1 for rid in referrals if rid % 2)


def _counts(db):
    return (sorted(db.exec(select(FlowMonth.measure, FlowMonth.a, FlowMonth.b,
                                  FlowMonth.n)).all()),
            sorted(db.exec(select(FlowDay.sent_on, FlowDay.measure, FlowDay.a, FlowDay.b,
                                  FlowDay.n)).all()))


def test_flows_refresh_command_rewrites_rows_and_recounts(app, db, world):
    rid = sent_referral(world)
    row = _row(db, rid)
    row.decision_days, row.borough = 99, "Stale"
    db.add(row)
    month = db.exec(select(FlowMonth).where(FlowMonth.measure == "outcome")).first()
    month.n += 5
    db.add(month)
    db.commit()
    result = app.test_cli_runner().invoke(args=["flows-refresh"])
    assert result.exit_code == 0, result.output
    assert "rewritten: 1;" in result.output
    row = _row(db, rid)
    assert (row.decision_days, row.borough) == (None, world.person.borough or "not-recorded")
    assert db.exec(select(FlowMonth.n).where(FlowMonth.measure == "outcome")).all() == [1]


def test_count_changes_wait_for_the_commit_and_a_rollback_drops_them(world):
    rid = sent_referral(world)
    db = world.db
    before = _counts(db)

    def decline():
        referral = db.get(Referral, rid)
        referral.status, referral.decided_at = "rejected", world.clock.now()
        referral.reason_code = "no-capacity"
        db.add(referral)
        db.flush()
        refresh_flows(db, [rid])

    def stored():  # read around the session, so the pending changes are not applied first
        return sorted(db.connection().execute(sa.text(
            "SELECT measure, a, b, n FROM flow_month")).all())

    decline()
    assert db.info.get("flows.count_deltas")
    assert stored() == before[0]  # not written yet
    db.rollback()
    assert "flows.count_deltas" not in db.info
    assert _counts(db) == before
    decline()
    db.commit()
    assert "flows.count_deltas" not in db.info
    kept = _counts(db)
    assert kept != before
    assert sum(n for m, a, _b, n in kept[0] if m == "outcome" and a == "declined") == 1
    rebuild_flow_counts(db)
    db.commit()
    assert _counts(db) == kept


def test_a_status_change_writes_no_flows_on_the_request_path_only_its_mark(world, app):
    rid = sent_referral(world)
    world.later(days=1)
    ok(act(world.vcse, rid, "accept", {}))
    assert _row(world.db, rid).outcome == "in-progress"
    assert _marked(world.db) == []
    with app.app_context():
        bind = engine()
    statements = []

    def seen(_conn, _cursor, statement, *_):
        if "referral_flow" in statement or "flow_month" in statement or "flow_day" in statement:
            statements.append(statement.split()[0])

    sa.event.listen(bind, "before_cursor_execute", seen)
    try:
        ok(act(world.vcse, rid, "start"))
    finally:
        sa.event.remove(bind, "before_cursor_execute", seen)
    assert statements == []  # the status change's own UPDATE marked it
    assert _marked(world.db) == [rid]
    assert _row(world.db, rid).outcome == "in-progress"
    assert _marked(world.db) == []


def test_the_worker_refreshes_marked_referrals_and_a_rollback_keeps_the_marks(world, app):
    rid = sent_referral(world)
    db = world.db
    assert _row(db, rid).outcome == "awaiting"
    ok(act(world.vcse, rid, "decline", {"reason_code": "no-capacity"}))
    assert _marked(db) == [rid]
    with app.app_context():
        bind = engine()
    with Session(bind) as other:
        assert refresh_stale_flows(other) == 1
        other.rollback()  # a refresh that did not commit changes nothing
    assert _marked(db) == [rid]
    assert db.get(ReferralFlow, rid).outcome == "awaiting"
    assert worker_refresh_flows(lambda: Session(bind, expire_on_commit=False)) == 1
    assert _marked(db) == []
    db.expire_all()
    assert (db.get(ReferralFlow, rid).outcome, db.get(ReferralFlow, rid).reason) == (
        "declined", "no-capacity")
    declined = db.exec(select(FlowMonth.n).where(FlowMonth.measure == "outcome",
                                                 FlowMonth.a == "declined")).all()
    assert declined == [1]
    assert worker_refresh_flows(lambda: Session(bind, expire_on_commit=False)) == 0
