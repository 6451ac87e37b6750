"""The whole step-down journey through HTTP, as the three roles would walk it (issue 3)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import select

from models import AuditEvent, Contact, Flag, Journey, OutboxMessage, ReferralEvent
from tests.test_referral_support import HANDOVER, act, make_offer, nhs, ok, referral_row


def test_coordinator_refers_vcse_worker_delivers_coordinator_discharges(
        app, db, demo, clock, as_user):
    offer = make_offer(db, demo)
    coordinator, worker, peer = as_user("coordinator"), as_user("vcse"), as_user("peer")
    vcse_a = demo["organisations"]["vcse-a"]
    users = demo["users"]

    # --- the care coordinator: person, consent, journey, referral with handover, send -------
    person = ok(coordinator.post("/api/v1/people", json={
        "nhs_number": nhs(500), "given_name": "Amara", "family_name": "Okafor",
        "preferred_name": "Amy", "pronouns": "she/her", "date_of_birth": "1991-03-14",
        "postcode_district": "NW10", "borough": "Brent",
        "about_me": {"strengths": "I'm a good cook", "what_matters": "My daughter",
                     "what_helps": "Text me first"},
        "needs": ["peer-support", "social-connection"],
    }), 201)
    ok(coordinator.post(f"/api/v1/people/{person['id']}/consents", json={
        "organisation_id": vcse_a.id, "purpose": "Peer mentoring", "lawful_basis": "public-task",
        "condition": "health-social-care", "method": "verbal",
        "given_at": clock.now().isoformat(),
        "expires_at": (clock.now() + timedelta(days=365)).isoformat(),
    }), 201)
    journey = ok(coordinator.post("/api/v1/journeys", json={
        "person_id": person["id"],
        "statutory_contact_user_id": users["coordinator@demo.stepdown.test"].id,
        "review_due": (clock.now().date() + timedelta(days=28)).isoformat(),
        "members": [
            {"user_id": users["coordinator@demo.stepdown.test"].id, "role": "care-coordinator"},
            {"user_id": users["peer@demo.stepdown.test"].id, "role": "peer-worker"},
            {"user_id": users["vcse@demo.stepdown.test"].id, "role": "vcse-worker"},
        ],
    }, headers={"Idempotency-Key": "journey-1"}), 201)
    assert journey["status"] == "planned"
    assert {m["role"] for m in journey["members"]} == {"care-coordinator", "peer-worker",
                                                       "vcse-worker"}
    draft = ok(coordinator.post("/api/v1/referrals", json={
        "journey_id": journey["id"], "offer_id": offer.id, **HANDOVER,
    }, headers={"Idempotency-Key": "referral-1"}), 201)
    assert draft["status"] == "draft" and draft["allowed_actions"] == ["send", "cancel"]
    rid = draft["id"]
    # A draft is the referring team's own: the VCSE organisation cannot see it yet.
    assert worker.get(f"/api/v1/referrals/{rid}").status_code == 404
    sent = ok(act(coordinator, rid, "send"))
    assert sent["status"] == "requested" and sent["sent_at"]
    assert "I'm a good cook" in ok(coordinator.get(f"/api/v1/referrals/{rid}"))["handover"][
        "about_me"]
    emails = db.exec(select(OutboxMessage).where(OutboxMessage.topic == "referral.sent")).all()
    assert [m.recipient for m in emails] == ["mentoring@demo.stepdown.test"]
    assert "Amara" not in emails[0].payload and "Okafor" not in emails[0].payload

    # --- the VCSE worker: inbox, read the handover, accept, start, contacts, complete ---------
    inbox = ok(worker.get("/api/v1/referrals?box=inbox"))
    assert [item["id"] for item in inbox["items"]] == [rid]
    seen = worker.get(f"/api/v1/referrals/{rid}")
    body = ok(seen)
    assert body["handover"]["crisis_plan"] == HANDOVER["crisis_plan"]
    assert body["person"]["name"] == "Amy Okafor"
    assert "nhs_number" not in body["person"] and "date_of_birth" not in body["person"]
    assert body["allowed_actions"] == ["accept", "decline"]
    accepted = ok(act(worker, rid, "accept", {"waitlist": False}, if_match=seen.headers["ETag"]))
    assert accepted["status"] == "accepted"
    assert ok(coordinator.get(f"/api/v1/journeys/{journey['id']}"))["status"] == "active"
    ok(act(worker, rid, "start"))
    clock.advance(days=2)  # sessions time out when idle: everyone signs in again
    coordinator, worker, peer = as_user("coordinator"), as_user("vcse"), as_user("peer")
    ok(worker.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "could-not-contact", "happened_at": (clock.now() - timedelta(days=1)).isoformat(),
    }), 201)
    met = ok(worker.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": clock.now().isoformat(), "note": "Met at the cafe",
    }, headers={"Idempotency-Key": "contact-1"}), 201)
    assert met["outcome"] == "attended"
    ok(peer.post(f"/api/v1/referrals/{rid}/notes", json={
        "kind": "client-voice", "text": "Amy says the cafe was better than the clinic."}), 201)
    clock.advance(days=30)
    coordinator, worker = as_user("coordinator"), as_user("vcse")
    done = ok(act(worker, rid, "complete"))
    assert done["status"] == "completed" and done["allowed_actions"] == []

    # --- the care coordinator: statutory discharge starts the 90-day safety net ---------------
    read = coordinator.get(f"/api/v1/journeys/{journey['id']}")
    discharged = ok(coordinator.post(
        f"/api/v1/journeys/{journey['id']}/discharge",
        json={"discharged_on": clock.now().date().isoformat()},
        headers={"If-Match": read.headers["ETag"]}))
    assert discharged["safety_net_ends"] == (clock.now().date() + timedelta(days=90)).isoformat()
    assert discharged["referrals"][0]["status"] == "completed"

    # The record: one event per change, first contact = the attended one, audit with person.
    full = ok(coordinator.get(f"/api/v1/referrals/{rid}"))
    assert [e["action"] for e in full["events"]] == ["create", "send", "accept", "start",
                                                     "complete"]
    assert [c["outcome"] for c in full["contacts"]] == ["could-not-contact", "attended"]
    assert full["notes"][0]["kind"] == "client-voice"
    assert full["notes"][0]["author_role"] == "peer_worker"
    assert full["person"]["nhs_number"] == person["nhs_number"]
    row = referral_row(db, rid)
    assert row.first_contact_at == db.exec(select(Contact.happened_at).where(
        Contact.outcome == "attended")).one()
    assert db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == rid)).all()
    actions = {e.action for e in db.exec(select(AuditEvent).where(
        AuditEvent.person_id == person["id"], AuditEvent.record_type == "referral")).all()}
    assert {"create", "send", "accept", "start", "record-contact", "add-note", "complete",
            "read", "list"} <= actions
    assert db.get(Journey, journey["id"]).discharged_on == clock.now().date()
    # Amara's needs are all covered by a peer mentoring charity: no responsibility gap flag.
    assert db.exec(select(Flag)).all() == []
    assert date.fromisoformat(discharged["safety_net_ends"]) > clock.now().date()
