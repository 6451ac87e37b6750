"""Referral actions through HTTP: the state machine, If-Match, reasons, side effects."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from models import AuditEvent, Flag, Journey, OutboxMessage, ReferralEvent
from service.referrals import hooks
from tests.test_referral_support import (
    act,
    create_referral,
    etag,
    give_consent,
    make_journey,
    make_person,
    ok,
    referral_row,
    sent_referral,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _events(db, rid):
    db.expire_all()
    return db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == rid)
                   .order_by(ReferralEvent.id)).all()


def test_every_action_needs_if_match_and_a_current_one(world):
    rid = sent_referral(world)
    missing = act(world.vcse, rid, "accept", if_match=None)
    assert missing.status_code == 428
    assert missing.mimetype == "application/problem+json"
    stale = act(world.vcse, rid, "accept", if_match=f'"referral-{rid}-v1"')
    assert stale.status_code == 412
    assert stale.headers["ETag"] == etag(world.vcse, rid)
    assert referral_row(world.db, rid).status == "requested"


def test_illegal_transition_is_409_listing_the_allowed_actions(world):
    rid = sent_referral(world)
    response = act(world.vcse, rid, "complete")
    assert response.status_code == 409
    problem = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert problem["allowed_actions"] == ["accept", "decline", "cancel"]
    assert problem["status_now"] == "requested"
    assert [e.action for e in _events(world.db, rid)] == ["create", "send"]


def test_decline_needs_a_coded_reason_and_needs_specialist_support_raises_a_flag(world):
    rid = sent_referral(world)
    missing = act(world.vcse, rid, "decline", {})
    assert missing.status_code == 422
    assert "reason_code" in missing.get_json()["errors"]
    wrong = act(world.vcse, rid, "decline", {"reason_code": "sent-in-error"})
    assert wrong.status_code == 422 and "reason_code" in wrong.get_json()["errors"]
    declined = ok(act(world.vcse, rid, "decline", {"reason_code": "needs-specialist-support",
                                                   "reason_text": "Needs a psychologist"}))
    assert declined["status"] == "rejected"
    assert declined["reason_code"] == "needs-specialist-support"
    flag = world.db.exec(select(Flag).where(Flag.trigger == "declined-needs-specialist")).one()
    assert flag.referral_id == rid and flag.routed_team_id == world.journey.team_id
    # Declining does not end the journey.
    world.db.expire_all()
    assert world.db.get(Journey, world.journey.id).status == "planned"
    event = _events(world.db, rid)[-1]
    assert (event.action, event.from_status, event.to_status, event.reason_code) == (
        "decline", "requested", "rejected", "needs-specialist-support")


def test_other_decline_reasons_raise_no_flag(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "decline", {"reason_code": "no-capacity"}))
    assert world.db.exec(select(Flag)).all() == []


def test_hold_resume_fail_with_reasons(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    ok(act(world.vcse, rid, "start"))
    assert act(world.vcse, rid, "hold", {}).status_code == 422
    held = ok(act(world.vcse, rid, "hold", {"reason_code": "person-unwell"}))
    assert held["status"] == "on-hold" and held["allowed_actions"] == ["resume", "fail"]
    resumed = ok(act(world.vcse, rid, "resume"))
    assert resumed["status"] == "in-progress" and resumed["reason_code"] is None
    ok(act(world.vcse, rid, "hold", {"reason_code": "person-request"}))
    assert act(world.vcse, rid, "fail", {}).status_code == 422
    failed = ok(act(world.vcse, rid, "fail", {"reason_code": "could-not-engage"}))
    assert failed["status"] == "failed" and failed["ended_at"]
    assert [e.action for e in _events(world.db, rid)] == [
        "create", "send", "accept", "start", "hold", "resume", "hold", "fail"]
    versions = referral_row(world.db, rid).version
    assert versions == 8  # created at 1, one bump per change


def test_cancel_is_the_referrers_from_any_open_state(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    refused = act(world.vcse, rid, "cancel", {"reason_code": "no-longer-needed"})
    assert refused.status_code == 403  # the receiver declines or fails, it does not cancel
    assert act(world.coordinator, rid, "cancel", {}).status_code == 422
    cancelled = ok(act(world.coordinator, rid, "cancel", {"reason_code": "no-longer-needed"}))
    assert cancelled["status"] == "cancelled"
    again = act(world.coordinator, rid, "cancel", {"reason_code": "no-longer-needed"})
    assert again.status_code == 409 and again.get_json()["allowed_actions"] == []


def test_a_draft_can_be_cancelled(world):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
    assert ok(act(world.coordinator, rid, "cancel", {"reason_code": "sent-in-error"}))[
        "status"] == "cancelled"


def test_only_the_receiving_side_decides_and_only_the_referring_side_sends(world):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
    assert act(world.vcse, rid, "send", if_match='"x"').status_code == 403  # no permission
    ok(act(world.coordinator, rid, "send"))
    assert act(world.coordinator, rid, "accept").status_code == 403
    assert act(world.vcse_b, rid, "accept", if_match='"x"').status_code == 404


def test_accept_with_waitlist_needs_an_expected_start_from_today(world):
    rid = sent_referral(world)
    assert "expected_start" in act(world.vcse, rid, "accept", {"waitlist": True}).get_json()[
        "errors"]
    past = (world.clock.now().date() - timedelta(days=1)).isoformat()
    assert act(world.vcse, rid, "accept", {"waitlist": True, "expected_start": past}
               ).status_code == 422
    start = (world.clock.now().date() + timedelta(weeks=4)).isoformat()
    body = ok(act(world.vcse, rid, "accept", {"waitlist": True, "expected_start": start}))
    assert body["waitlist"] is True and body["expected_start"] == start
    world.db.expire_all()
    assert world.db.get(Journey, world.journey.id).status == "active"


def test_send_needs_consent_naming_the_receiving_organisation(world):
    # Consent names VCSE A only: a referral to VCSE B's offer is refused at send.
    rid = ok(create_referral(world.coordinator, world.journey.id, world.other_offer.id), 201)["id"]
    refused = act(world.coordinator, rid, "send")
    assert refused.status_code == 422
    assert "consent" in refused.get_json()["errors"]
    assert "Amara" not in refused.get_data(as_text=True)
    assert referral_row(world.db, rid).status == "draft"
    assert world.db.exec(select(OutboxMessage)).all() == []


def test_expired_or_withdrawn_consent_does_not_open_the_gate(world):
    world.consent.expires_at = world.clock.now() - timedelta(minutes=1)
    world.consent.given_at = world.clock.now() - timedelta(days=400)
    world.db.add(world.consent)
    world.db.commit()
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
    assert act(world.coordinator, rid, "send").status_code == 422


def test_alternative_lawful_basis_needs_its_own_permission_and_raises_a_review_flag(world):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.other_offer.id), 201)["id"]
    basis = {"alternative_basis": "safeguarding",
             "alternative_justification": "Immediate risk of exploitation; consent not possible"}
    assert act(world.coordinator, rid, "send", {"alternative_basis": "safeguarding"}
               ).status_code == 422  # justification missing
    # The care coordinator does not hold the permission: checked on the server.
    assert act(world.coordinator, rid, "send", basis).status_code == 403
    sent = ok(act(world.duty, rid, "send", basis))
    assert sent["status"] == "requested" and sent["alternative_basis"] == "safeguarding"
    flag = world.db.exec(select(Flag).where(Flag.trigger == "lawful-basis-review")).one()
    assert flag.referral_id == rid
    audited = world.db.exec(select(AuditEvent).where(
        AuditEvent.action == "share-without-consent")).one()
    assert audited.person_id == world.person.id and audited.record_id == str(rid)
    # VCSE B sees it although no consent names it: the recorded basis is the lawful ground.
    assert ok(world.vcse_b.get(f"/api/v1/referrals/{rid}"))["handover"]["goals"]
    assert "alternative_justification" not in ok(world.vcse_b.get(f"/api/v1/referrals/{rid}"))


def test_responsibility_gap_raises_a_flag_when_sent(world):
    person = make_person(world.db, world.demo, seed=2, given="Grace",
                         needs=("peer-support", "medication-management"))
    give_consent(world.db, world.demo, person, "vcse-a", world.clock)
    journey = make_journey(world.db, world.demo, person, world.clock)
    rid = ok(create_referral(world.coordinator, journey.id, world.offer.id), 201)["id"]
    ok(act(world.coordinator, rid, "send"))
    flag = world.db.exec(select(Flag).where(Flag.trigger == "responsibility-gap")).one()
    assert flag.referral_id == rid and "medication-management" in flag.description


def test_status_listeners_are_called_on_every_change(world):
    seen = []

    def listener(db, referral, event):
        seen.append((referral.id, referral.status, event.action, event.to_status))

    hooks.STATUS_LISTENERS.append(listener)
    try:
        rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
        ok(act(world.coordinator, rid, "send"))
        ok(act(world.vcse, rid, "accept"))
    finally:
        hooks.STATUS_LISTENERS.remove(listener)
    assert seen == [(rid, "requested", "send", "requested"), (rid, "accepted", "accept", "accepted")]


def test_withdrawing_consent_mid_way_cancels_and_leaves_the_vcse_a_tombstone(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    ok(act(world.vcse, rid, "start"))
    withdrawn = ok(world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                                          json={"reason": "Changed their mind"}))
    assert withdrawn["cancelled_referral_ids"] == [rid]
    row = referral_row(world.db, rid)
    assert (row.status, row.reason_code) == ("cancelled", "consent-withdrawn")
    tomb = world.vcse.get(f"/api/v1/referrals/{rid}")
    body = ok(tomb)
    assert body == {"id": rid, "status": "cancelled", "tombstone": True,
                    "detail": f"consent withdrawn on {world.clock.now().date().isoformat()}",
                    "version": row.version}
    text = tomb.get_data(as_text=True)
    assert "Amara" not in text and "Okafor" not in text and "NW10" not in text
    inbox = ok(world.vcse.get("/api/v1/referrals"))["items"]
    assert inbox[0]["tombstone"] is True and "person" not in inbox[0]
    # No more actions, contacts or notes from VCSE A: out of scope is 404.
    assert act(world.vcse, rid, "complete", if_match='"x"').status_code == 404
    assert world.vcse.post(f"/api/v1/referrals/{rid}/notes", json={"text": "hi"}
                           ).status_code == 404
    assert world.vcse.get(f"/api/v1/people/{world.person.id}").status_code == 404
    # The referring team still sees everything.
    assert ok(world.coordinator.get(f"/api/v1/referrals/{rid}"))["person"]["given_name"] == "Amara"


def test_contacts_first_attended_contact_and_missed_run_flag(world):
    rid = sent_referral(world)
    before = world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": world.clock.now().isoformat()})
    assert before.status_code == 409  # not accepted yet
    ok(act(world.vcse, rid, "accept"))
    world.later(hours=2)
    future = world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": (world.clock.now() + timedelta(hours=1)).isoformat()})
    assert future.status_code == 422 and "happened_at" in future.get_json()["errors"]
    now = world.clock.now()
    for minutes, outcome in ((50, "did-not-attend"), (40, "could-not-contact")):
        ok(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
            "outcome": outcome, "happened_at": (now - timedelta(minutes=minutes)).isoformat()}), 201)
    assert referral_row(world.db, rid).first_contact_at is None
    assert world.db.exec(select(Flag)).all() == []
    ok(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "did-not-attend", "happened_at": (now - timedelta(minutes=30)).isoformat()}), 201)
    assert world.db.exec(select(Flag.trigger)).all() == ["missed-contacts"]
    ok(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": (now - timedelta(minutes=10)).isoformat()}), 201)
    ok(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": (now - timedelta(minutes=20)).isoformat()}), 201)
    assert referral_row(world.db, rid).first_contact_at == now - timedelta(minutes=20)
    # Contacts are the receiver's record; the referring team reads them.
    assert world.coordinator.post(f"/api/v1/referrals/{rid}/contacts", json={
        "outcome": "attended", "happened_at": now.isoformat()}).status_code == 403
    assert len(ok(world.coordinator.get(f"/api/v1/referrals/{rid}"))["contacts"]) == 5


def test_contacts_and_notes_replay_with_an_idempotency_key(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    body = {"outcome": "attended", "happened_at": world.clock.now().isoformat()}
    first = ok(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json=body,
                               headers={"Idempotency-Key": "c-1"}), 201)
    again = world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json=body,
                            headers={"Idempotency-Key": "c-1"})
    assert again.status_code == 201 and again.get_json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    note = {"kind": "note", "text": "Phoned, left a message"}
    n1 = ok(world.vcse.post(f"/api/v1/referrals/{rid}/notes", json=note,
                            headers={"Idempotency-Key": "n-1"}), 201)
    n2 = ok(world.vcse.post(f"/api/v1/referrals/{rid}/notes", json=note,
                            headers={"Idempotency-Key": "n-1"}), 201)
    assert n1["id"] == n2["id"]
    other = world.vcse.post(f"/api/v1/referrals/{rid}/notes", json={"text": "Different"},
                            headers={"Idempotency-Key": "n-1"})
    assert other.status_code == 422
    detail = ok(world.vcse.get(f"/api/v1/referrals/{rid}"))
    assert len(detail["contacts"]) == 1 and len(detail["notes"]) == 1
    assert detail["notes"][0]["author_role"] == "vcse_worker"


def test_manager_assigns_to_a_worker_of_their_organisation(world):
    rid = sent_referral(world)
    worker_id = world.demo["users"]["vcse@demo.stepdown.test"].id
    assert world.vcse.post(f"/api/v1/referrals/{rid}/assign", json={"user_id": worker_id},
                           headers={"If-Match": etag(world.vcse, rid)}).status_code == 403
    outsider = world.demo["users"]["vcse-b@demo.stepdown.test"].id
    refused = world.manager.post(f"/api/v1/referrals/{rid}/assign", json={"user_id": outsider},
                                 headers={"If-Match": etag(world.manager, rid)})
    assert refused.status_code == 422 and "user_id" in refused.get_json()["errors"]
    assert world.manager.post(f"/api/v1/referrals/{rid}/assign",
                              json={"user_id": worker_id}).status_code == 428
    assigned = ok(world.manager.patch(f"/api/v1/referrals/{rid}/assign",
                                      json={"user_id": worker_id},
                                      headers={"If-Match": etag(world.manager, rid)}))
    assert assigned["assigned_to"]["id"] == worker_id
    mine = ok(world.vcse.get("/api/v1/referrals?box=inbox&assignee=me"))["items"]
    assert [i["id"] for i in mine] == [rid]
    assert world.db.exec(select(OutboxMessage.topic).where(
        OutboxMessage.topic == "referral.assigned")).all() == ["referral.assigned"]
