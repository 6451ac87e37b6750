"""The VCSE inbox and the statutory outbox: order, filters, keyset pages, constant SQL per page."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa

from models import Referral
from tests.test_referral_support import (
    create_referral,
    give_consent,
    make_journey,
    make_offer,
    make_person,
    ok,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _many(w, count: int, offers=None, start_seed: int = 100) -> list[int]:
    """`count` sent referrals to VCSE A (one person each), sent a minute apart."""
    offers = offers or [w.offer]
    db, demo, clock = w.db, w.demo, w.clock
    team_id = w.journey.team_id
    ids = []
    for n in range(count):
        person = make_person(db, demo, seed=start_seed + n, given=f"Person{n}")
        give_consent(db, demo, person, "vcse-a", clock)
        journey = make_journey(db, demo, person, clock)
        offer = offers[n % len(offers)]
        at = clock.now() - timedelta(minutes=count - n)
        referral = Referral(journey_id=journey.id, person_id=person.id, offer_id=offer.id,
                            referring_team_id=team_id,
                            receiving_organisation_id=offer.organisation_id,
                            status="requested", goals="g", created_at=at, sent_at=at,
                            updated_at=at)
        db.add(referral)
        db.commit()
        ids.append(referral.id)
    return ids


def _cursor(at: str, referral_id: int) -> str:
    raw = json.dumps([at, referral_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@contextmanager
def count_queries(app):
    engine = app.extensions["stepdown.engine"]
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def test_inbox_is_newest_first_with_keyset_pages(world):
    ids = _many(world, 7)
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/referrals?box=inbox&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = ok(world.vcse.get(url))
        seen += [item["id"] for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == list(reversed(ids)) and pages == 3
    item = ok(world.vcse.get("/api/v1/referrals?limit=1"))["items"][0]
    assert item["person"]["name"] == "Amy Okafor" and item["offer"]["name"] == "Peer mentoring"
    assert "nhs_number" not in item["person"]


def test_inbox_filters_by_status_offer_and_assignee(world):
    second = make_offer(world.db, world.demo, name="Peer coaching")
    ids = _many(world, 4, offers=[world.offer, second])
    row = world.db.get(Referral, ids[0])
    row.status, row.decided_at = "accepted", world.clock.now()
    row.assigned_to_user_id = world.demo["users"]["vcse@demo.stepdown.test"].id
    world.db.add(row)
    world.db.commit()

    def listed(query):
        return [i["id"] for i in ok(world.vcse.get(f"/api/v1/referrals?{query}"))["items"]]

    assert listed("status=accepted") == [ids[0]]
    assert listed(f"offer={second.id}") == [ids[3], ids[1]]
    assert listed("assignee=me") == [ids[0]]
    assert listed("assignee=none") == [ids[3], ids[2], ids[1]]
    vcse_id = world.demo["users"]["vcse@demo.stepdown.test"].id
    assert listed(f"assignee={vcse_id}&status=accepted&offer={world.offer.id}") == [ids[0]]
    for bad, field in (("status=lost", "status"), ("assignee=bob", "assignee"),
                       ("limit=0", "limit"), ("limit=101", "limit"), ("cursor=@@@", "cursor"),
                       ("box=outbox", "box"), ("offer=99999999999", "offer"),
                       ("assignee=99999999999", "assignee"),
                       ("cursor=" + _cursor("2027-01-04T09:00:00+00:00", 2**40), "cursor")):
        response = world.vcse.get(f"/api/v1/referrals?{bad}")
        assert response.status_code == 422, bad
        assert any(field in key for key in response.get_json()["errors"]), bad


def test_inbox_leaves_out_drafts_and_other_organisations(world):
    ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)  # a draft
    person = make_person(world.db, world.demo, seed=9, given="Jordan")
    give_consent(world.db, world.demo, person, "vcse-b", world.clock)
    journey = make_journey(world.db, world.demo, person, world.clock)
    other = ok(create_referral(world.coordinator, journey.id, world.other_offer.id), 201)
    from tests.test_referral_support import act

    ok(act(world.coordinator, other["id"], "send"))
    assert ok(world.vcse.get("/api/v1/referrals"))["items"] == []
    assert [i["id"] for i in ok(world.vcse_b.get("/api/v1/referrals"))["items"]] == [other["id"]]


def test_outbox_is_the_teams_referrals_including_drafts(world):
    draft = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)
    page = ok(world.coordinator.get("/api/v1/referrals"))
    assert [i["id"] for i in page["items"]] == [draft["id"]]
    assert page["items"][0]["status"] == "draft"
    assert ok(world.peer.get("/api/v1/referrals?box=outbox"))["items"][0]["id"] == draft["id"]
    assert world.coordinator.get("/api/v1/referrals?box=inbox").status_code == 422


def test_a_page_costs_the_same_number_of_queries_whatever_its_size(world, app):
    _many(world, 30)
    counts = {}
    for limit in (1, 5, 30):
        world.vcse.get("/api/v1/referrals?limit=1")  # warm: session refresh etc.
        with count_queries(app) as statements:
            page = ok(world.vcse.get(f"/api/v1/referrals?limit={limit}"))
        assert len(page["items"]) == limit
        counts[limit] = len(statements)
    assert counts[1] == counts[5] == counts[30], counts
    # The outbox too.
    outbox = {}
    for limit in (1, 30):
        world.coordinator.get("/api/v1/referrals?limit=1")
        with count_queries(app) as statements:
            ok(world.coordinator.get(f"/api/v1/referrals?limit={limit}"))
        outbox[limit] = len(statements)
    assert outbox[1] == outbox[30], outbox
