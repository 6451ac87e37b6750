"""Journeys API: plan with an MDT of equals, read with referrals summary, statutory discharge."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from models import AuditEvent, Journey, JourneyMember
from tests.test_referral_support import (
    act,
    create_referral,
    give_consent,
    make_offer,
    make_person,
    ok,
    sent_referral,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _body(demo, person_id, clock, **overrides):
    users = demo["users"]
    body = {
        "person_id": person_id,
        "statutory_contact_user_id": users["coordinator@demo.stepdown.test"].id,
        "review_due": (clock.now().date() + timedelta(days=28)).isoformat(),
        "members": [
            {"user_id": users["coordinator@demo.stepdown.test"].id, "role": "care-coordinator"},
            {"user_id": users["peer@demo.stepdown.test"].id, "role": "peer-worker"},
            {"user_id": users["vcse@demo.stepdown.test"].id, "role": "vcse-worker"},
        ],
    }
    body.update(overrides)
    return body


def test_coordinator_plans_a_journey_owned_by_their_team(app, db, demo, clock, as_user):
    person = make_person(db, demo)
    coordinator = as_user("coordinator")
    response = coordinator.post("/api/v1/journeys", json=_body(demo, person.id, clock))
    body = ok(response, 201)
    assert response.headers["Location"] == f"/api/v1/journeys/{body['id']}"
    assert response.headers["ETag"] == f'"journey-{body["id"]}-v1"'
    assert body["status"] == "planned" and body["safety_net_days"] == 90
    assert body["team"]["name"] == "Brent Community Mental Health Team"
    assert body["statutory_contact"]["name"] == "Casey Coordinator"
    assert body["person"] == {"id": person.id, "name": "Amy Okafor"}
    roles = {(m["name"], m["role"]) for m in body["members"]}
    assert roles == {("Casey Coordinator", "care-coordinator"), ("Pat Peer", "peer-worker"),
                     ("Val Worker", "vcse-worker")}
    audit = db.exec(select(AuditEvent).where(AuditEvent.record_type == "journey")).one()
    assert (audit.action, audit.person_id) == ("create", person.id)
    # The peer worker is an equal MDT member: they read the journey too.
    assert ok(as_user("peer").get(f"/api/v1/journeys/{body['id']}"))["id"] == body["id"]


def test_journey_creation_is_idempotent(app, db, demo, clock, as_user):
    person = make_person(db, demo)
    coordinator = as_user("coordinator")
    body = _body(demo, person.id, clock)
    first = ok(coordinator.post("/api/v1/journeys", json=body,
                                headers={"Idempotency-Key": "j-1"}), 201)
    again = coordinator.post("/api/v1/journeys", json=body, headers={"Idempotency-Key": "j-1"})
    assert again.status_code == 201 and again.get_json()["id"] == first["id"]
    assert len(db.exec(select(Journey)).all()) == 1
    changed = coordinator.post("/api/v1/journeys", json={**body, "safety_net_days": 60},
                               headers={"Idempotency-Key": "j-1"})
    assert changed.status_code == 422


def test_bad_journey_input_is_422_naming_the_field_and_writes_nothing(app, db, demo, clock,
                                                                      as_user):
    person = make_person(db, demo)
    coordinator = as_user("coordinator")
    vcse_user = demo["users"]["vcse@demo.stepdown.test"].id
    cases = [
        ({"review_due": (clock.now().date() - timedelta(days=1)).isoformat()}, "review_due"),
        ({"statutory_contact_user_id": vcse_user}, "statutory_contact_user_id"),
        ({"members": [{"user_id": 99999, "role": "peer-worker"}]}, "members"),
        ({"members": [{"user_id": vcse_user, "role": "boss"}]}, "members"),
        ({"members": [{"user_id": vcse_user, "role": "vcse-worker"},
                      {"user_id": vcse_user, "role": "peer-worker"}]}, "members"),
        ({"safety_net_days": 400}, "safety_net_days"),
        ({"safety_net_days": "ninety"}, "safety_net_days"),
        ({"person_id": "1"}, "person_id"),
        ({"colour": "blue"}, "colour"),
        ({"team_id": demo["teams"]["Peer Mentoring Team"].id}, "team_id"),
    ]
    for overrides, field in cases:
        body = {**_body(demo, person.id, clock), **overrides}
        response = coordinator.post("/api/v1/journeys", json=body)
        assert response.status_code == 422, (overrides, response.get_json())
        assert response.mimetype == "application/problem+json"
        assert field in response.get_json()["errors"], (field, response.get_json())
    assert db.exec(select(Journey)).all() == []
    assert db.exec(select(JourneyMember)).all() == []


def test_only_statutory_teams_plan_journeys_for_people_they_see(app, db, demo, clock, as_user):
    person = make_person(db, demo, org_key="trust-b")  # registered by another trust
    coordinator = as_user("coordinator")
    response = coordinator.post("/api/v1/journeys", json=_body(demo, person.id, clock))
    assert response.status_code == 404
    assert "Amara" not in response.get_data(as_text=True)
    assert as_user("vcse").post("/api/v1/journeys",
                                json=_body(demo, person.id, clock)).status_code == 403


def test_vcse_sees_only_journeys_it_was_referred_into_and_only_its_referrals(world):
    rid = sent_referral(world)
    # A second referral to another organisation (alternative basis by the duty clinician).
    other = ok(create_referral(world.coordinator, world.journey.id, world.other_offer.id), 201)
    ok(act(world.duty, other["id"], "send", {
        "alternative_basis": "safeguarding",
        "alternative_justification": "Immediate safeguarding concern, consent not possible"}))
    mine = ok(world.vcse.get(f"/api/v1/journeys/{world.journey.id}"))
    assert [r["id"] for r in mine["referrals"]] == [rid]
    theirs = ok(world.vcse_b.get(f"/api/v1/journeys/{world.journey.id}"))
    assert [r["id"] for r in theirs["referrals"]] == [other["id"]]
    statutory = ok(world.coordinator.get(f"/api/v1/journeys/{world.journey.id}"))
    assert {r["id"] for r in statutory["referrals"]} == {rid, other["id"]}
    # Another person's journey: 404 for VCSE A, with nothing personal in the body.
    person = make_person(world.db, world.demo, seed=3, given="Grace")
    give_consent(world.db, world.demo, person, "vcse-a", world.clock)
    journey = ok(world.coordinator.post("/api/v1/journeys",
                                        json=_body(world.demo, person.id, world.clock)), 201)
    hidden = world.vcse.get(f"/api/v1/journeys/{journey['id']}")
    assert hidden.status_code == 404 and "Grace" not in hidden.get_data(as_text=True)
    denied = world.db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied",
                                                    AuditEvent.record_type == "journey")).one()
    assert denied.person_id == person.id


def test_first_accept_activates_the_journey_and_discharge_starts_the_safety_net(world):
    rid = sent_referral(world)
    assert ok(world.coordinator.get(f"/api/v1/journeys/{world.journey.id}"))["status"] == "planned"
    ok(act(world.vcse, rid, "accept"))
    read = world.coordinator.get(f"/api/v1/journeys/{world.journey.id}")
    assert ok(read)["status"] == "active"
    url = f"/api/v1/journeys/{world.journey.id}/discharge"
    today = world.clock.now().date()
    assert world.coordinator.post(url, json={"discharged_on": today.isoformat()}
                                  ).status_code == 428
    assert world.coordinator.post(url, json={"discharged_on": today.isoformat()},
                                  headers={"If-Match": '"journey-1-v1"'}).status_code == 412
    early = world.coordinator.post(url, json={"discharged_on": (today - timedelta(days=3))
                                              .isoformat()},
                                   headers={"If-Match": read.headers["ETag"]})
    assert early.status_code == 422 and "discharged_on" in early.get_json()["errors"]
    assert world.vcse.post(url, json={"discharged_on": today.isoformat()},
                           headers={"If-Match": read.headers["ETag"]}).status_code == 403
    done = world.coordinator.post(url, json={"discharged_on": today.isoformat(),
                                             "safety_net_days": 60},
                                  headers={"If-Match": read.headers["ETag"]})
    body = ok(done)
    assert body["discharged_on"] == today.isoformat()
    assert body["safety_net_ends"] == (today + timedelta(days=60)).isoformat()
    assert done.headers["ETag"] != read.headers["ETag"]
    again = world.coordinator.post(url, json={"discharged_on": today.isoformat()},
                                   headers={"If-Match": done.headers["ETag"]})
    assert again.status_code == 409


def test_default_safety_net_is_ninety_days(world):
    read = world.coordinator.get(f"/api/v1/journeys/{world.journey.id}")
    today = world.clock.now().date()
    body = ok(world.coordinator.post(f"/api/v1/journeys/{world.journey.id}/discharge",
                                     json={"discharged_on": today.isoformat()},
                                     headers={"If-Match": read.headers["ETag"]}))
    assert body["safety_net_ends"] == (today + timedelta(days=90)).isoformat()


def test_no_new_referrals_on_a_finished_journey(world):
    world.journey.status = "finished"
    world.db.add(world.journey)
    world.db.commit()
    offer = make_offer(world.db, world.demo, name="Another offer")
    assert create_referral(world.coordinator, world.journey.id, offer.id).status_code == 409
