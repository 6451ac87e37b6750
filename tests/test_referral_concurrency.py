"""Concurrency on PostgreSQL: parallel accepts, parallel creates, parallel idempotent retries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import select

from models import IdempotencyRecord, Journey, Referral, ReferralEvent
from tests.test_referral_support import HANDOVER, etag, ok, sent_referral, signed_in
from tests.test_referral_support import world as _world_fixture

world = _world_fixture
pytestmark = pytest.mark.postgres


def _all_at_once(clients, call):
    """Run call(client) for every client in its own thread, released together."""
    barrier = threading.Barrier(len(clients))

    def run(client):
        barrier.wait()
        return call(client)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(run, clients))


def test_twenty_parallel_accepts_exactly_one_wins(world, app, db):
    rid = sent_referral(world)
    tag = etag(world.vcse, rid)
    clients = [signed_in(app, "vcse@demo.stepdown.test") for _ in range(10)]
    clients += [signed_in(app, "vcse-manager@demo.stepdown.test") for _ in range(10)]
    responses = _all_at_once(clients, lambda c: c.post(
        f"/api/v1/referrals/{rid}/accept", json={}, headers={"If-Match": tag}))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 409, 412}, codes
    db.expire_all()
    accepts = db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == rid,
                                                  ReferralEvent.action == "accept")).all()
    assert len(accepts) == 1
    referral = db.get(Referral, rid)
    assert (referral.status, referral.version) == ("accepted", 3)
    assert db.get(Journey, world.journey.id).status == "active"


def test_parallel_creates_of_the_same_open_referral_leave_one_row(world, app, db):
    clients = [signed_in(app, "coordinator@demo.stepdown.test") for _ in range(20)]
    body = {"journey_id": world.journey.id, "offer_id": world.offer.id, **HANDOVER}
    responses = _all_at_once(clients, lambda c: c.post("/api/v1/referrals", json=body))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(409) == 19, codes
    for response in responses:
        if response.status_code == 409:
            problem = response.get_json()
            assert problem["rule"] == "one-open-referral-per-person-per-offer"
            assert response.mimetype == "application/problem+json"
    db.expire_all()
    assert len(db.exec(select(Referral)).all()) == 1


def test_fifty_parallel_retries_with_one_idempotency_key_make_one_row(world, app, db):
    clients = [signed_in(app, "coordinator@demo.stepdown.test") for _ in range(50)]
    body = {"journey_id": world.journey.id, "offer_id": world.offer.id, **HANDOVER}
    responses = _all_at_once(clients, lambda c: c.post(
        "/api/v1/referrals", json=body, headers={"Idempotency-Key": "retry-me"}))
    assert {r.status_code for r in responses} == {201}
    assert len({ok(r, 201)["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 49
    db.expire_all()
    assert len(db.exec(select(Referral)).all()) == 1
    assert len(db.exec(select(IdempotencyRecord)).all()) == 1
