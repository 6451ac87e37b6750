"""Referrals: minimum necessary per role, out of scope is 404 without personal data, bad input is
422 naming the field with nothing written, idempotent creation, one open referral per offer."""

from __future__ import annotations

from sqlmodel import select

from models import AuditEvent, IdempotencyRecord, Referral, ReferralEvent
from tests.people_fixtures import add_user
from tests.test_referral_support import (
    BRENT_CMHT,
    HANDOVER,
    act,
    create_referral,
    ok,
    sent_referral,
    signed_in,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture
PERSONAL = ("Amara", "Okafor", "Amy", "NW10", "1991-03-14")


def _no_personal_data(response):
    text = response.get_data(as_text=True)
    for value in PERSONAL:
        assert value not in text, value


def test_statutory_view_has_identifiers_vcse_view_the_handover_without_them(world):
    rid = sent_referral(world)
    statutory = ok(world.coordinator.get(f"/api/v1/referrals/{rid}"))
    assert statutory["person"]["nhs_number"] == world.person.nhs_number
    assert statutory["person"]["date_of_birth"] == "1991-03-14"
    vcse = world.vcse.get(f"/api/v1/referrals/{rid}")
    body = ok(vcse)
    assert vcse.headers["ETag"] == f'"referral-{rid}-v2"'
    assert set(body["handover"]) == {"about_me", *HANDOVER}
    assert body["person"]["communication_needs"] == "Text before calling"
    assert "nhs_number" not in body["person"] and "date_of_birth" not in body["person"]
    assert world.person.nhs_number not in vcse.get_data(as_text=True)
    # The referring team's drafting history is not shown to the receiver.
    assert [e["action"] for e in body["events"]] == ["send"]


def test_other_organisations_get_404_with_no_personal_data_and_the_refusal_is_audited(
        world, app, db, demo):
    rid = sent_referral(world)
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    lambeth = signed_in(app, "lambeth@demo.stepdown.test")
    for client in (world.vcse_b, lambeth):
        for method, url in (("get", f"/api/v1/referrals/{rid}"),
                            ("get", f"/api/v1/journeys/{world.journey.id}")):
            response = getattr(client, method)(url)
            assert response.status_code == 404, url
            _no_personal_data(response)
    refused = act(world.vcse_b, rid, "accept", if_match='"x"')
    assert refused.status_code == 404
    _no_personal_data(refused)
    assert world.vcse_b.post(f"/api/v1/referrals/{rid}/notes", json={"text": "x"}
                             ).status_code == 404
    assert act(lambeth, rid, "cancel", {"reason_code": "other"}, if_match='"x"'
               ).status_code == 404
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied",
                                              AuditEvent.record_type == "referral")).all()
    assert len(denied) == 5 and {d.person_id for d in denied} == {world.person.id}
    # Nor do their lists show it.
    assert ok(world.vcse_b.get("/api/v1/referrals"))["items"] == []
    assert ok(lambeth.get("/api/v1/referrals"))["items"] == []
    assert world.vcse.get("/api/v1/referrals/99999").status_code == 404


def test_every_read_and_change_writes_one_audit_event_with_the_person(world, db):
    rid = sent_referral(world)
    before = len(db.exec(select(AuditEvent)).all())
    ok(world.vcse.get(f"/api/v1/referrals/{rid}"))
    events = db.exec(select(AuditEvent).order_by(AuditEvent.id)).all()[before:]
    assert [(e.action, e.record_id, e.person_id) for e in events] == [
        ("read", str(rid), world.person.id)]


def test_bad_referral_input_is_422_naming_the_field_and_writes_nothing(world, db):
    cases = [
        ({"goals": None}, "goals"),
        ({"goals": ""}, "goals"),
        ({"risk_summary": "x" * 4001}, "risk_summary"),
        ({"contact_in_hours": "x" * 501}, "contact_in_hours"),
        ({"journey_id": "one"}, "journey_id"),
        ({"offer_id": 99999}, "offer_id"),
        ({"offer_id": 2**40}, "offer_id"),
        ({"journey_id": -1}, "journey_id"),
        ({"nhs_number": "9434765919"}, "nhs_number"),
        ({"status": "accepted"}, "status"),
    ]
    for overrides, field in cases:
        body = {"journey_id": world.journey.id, "offer_id": world.offer.id, **HANDOVER,
                **overrides}
        response = world.coordinator.post("/api/v1/referrals", json=body)
        assert response.status_code == 422, (overrides, response.get_json())
        assert field in response.get_json()["errors"], (field, response.get_json())
    missing = world.coordinator.post("/api/v1/referrals", json={"journey_id": world.journey.id})
    assert {"offer_id", "goals", "crisis_plan", "risk_summary"} <= set(
        missing.get_json()["errors"])
    assert world.coordinator.post("/api/v1/referrals", data="not json",
                                  content_type="application/json").status_code in (400, 422)
    assert db.exec(select(Referral)).all() == []
    assert db.exec(select(ReferralEvent)).all() == []
    # Action bodies are checked too.
    rid = sent_referral(world)
    for action, body, field in (("accept", {"waitlist": "maybe"}, "waitlist"),
                                ("accept", {"colour": "red"}, "colour"),
                                ("decline", {"reason_code": "no-capacity",
                                             "reason_text": "x" * 2001}, "reason_text"),
                                ("start", {"note": "x"}, "note")):
        response = act(world.vcse, rid, action, body)
        assert response.status_code == 422 and field in response.get_json()["errors"], action
    assert db.exec(select(Referral.status).where(Referral.id == rid)).one() == "requested"


def test_inactive_offers_take_no_referrals(world, db):
    world.offer.status = "temporarily closed"
    db.add(world.offer)
    db.commit()
    response = create_referral(world.coordinator, world.journey.id, world.offer.id)
    assert response.status_code == 422 and "offer_id" in response.get_json()["errors"]


def test_one_open_referral_per_person_per_offer(world, db):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
    twice = create_referral(world.coordinator, world.journey.id, world.offer.id)
    assert twice.status_code == 409
    assert twice.get_json()["rule"] == "one-open-referral-per-person-per-offer"
    ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))
    ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)
    assert len(db.exec(select(Referral)).all()) == 2


def test_create_is_idempotent_and_a_reused_key_with_another_body_is_422(world, db):
    headers = {"Idempotency-Key": "create-1"}
    first = world.coordinator.post("/api/v1/referrals", headers=headers, json={
        "journey_id": world.journey.id, "offer_id": world.offer.id, **HANDOVER})
    body = ok(first, 201)
    replay = world.coordinator.post("/api/v1/referrals", headers=headers, json={
        "offer_id": world.offer.id, "journey_id": world.journey.id, **HANDOVER})
    assert replay.status_code == 201 and replay.get_json()["id"] == body["id"]
    assert replay.headers["ETag"] == first.headers["ETag"]
    other = world.coordinator.post("/api/v1/referrals", headers=headers, json={
        "journey_id": world.journey.id, "offer_id": world.other_offer.id, **HANDOVER})
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
    assert len(db.exec(select(Referral)).all()) == 1
    assert len(db.exec(select(IdempotencyRecord)).all()) == 1


def test_only_the_owning_team_refers(world, app, db, demo):
    add_user(db, demo, "safeguarding-cc@demo.stepdown.test", "trust-a", "care_coordinator",
             "Safeguarding Team")
    other_team = signed_in(app, "safeguarding-cc@demo.stepdown.test")
    response = create_referral(other_team, world.journey.id, world.offer.id)
    assert response.status_code == 404  # the journey is not theirs to see
    assert world.vcse.post("/api/v1/referrals", json={}).status_code == 403
    assert demo["teams"][BRENT_CMHT].id == world.journey.team_id
