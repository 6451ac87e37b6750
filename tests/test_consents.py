"""Consent: recorded with its lawful basis, listed per caller, and withdrawn with effect at once."""

from __future__ import annotations

from sqlmodel import func, select

from models import AuditEvent, Consent, Flag, IdempotencyRecord, Referral, ReferralEvent
from service.scoping import TOMBSTONE, referral_access
from tests.people_fixtures import (
    add_consent,
    add_journey,
    add_offer,
    add_referral,
    add_user,
    register,
)


def consent_body(demo, org_key="vcse-a", **overrides) -> dict:
    body = {
        "organisation_id": demo["organisations"][org_key].id,
        "purpose": "Peer mentoring after discharge",
        "lawful_basis": "public-task",
        "condition": "health-social-care",
        "method": "verbal",
        "given_at": "2027-01-04T08:30:00+00:00",
        "expires_at": "2028-01-04T08:30:00+00:00",
    }
    body.update(overrides)
    return body


def _count(db, model) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(model)).one()


def test_care_coordinator_records_consent(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    response = coordinator.post(f"/api/v1/people/{person_id}/consents", json=consent_body(demo))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "active"
    assert body["organisation_name"] == "Brent Peer Mentors"
    assert body["recorded_by"] == "Casey Coordinator"
    assert body["recorded_by_user_id"] == demo["users"]["coordinator@demo.stepdown.test"].id
    assert (body["lawful_basis"], body["condition"], body["method"]) == (
        "public-task", "health-social-care", "verbal")
    consent = db.get(Consent, body["id"])
    assert consent.person_id == person_id
    events = db.exec(select(AuditEvent).where(AuditEvent.record_type == "consent")).all()
    assert [(e.action, e.person_id) for e in events] == [("create", person_id)]
    listed = coordinator.get(f"/api/v1/people/{person_id}/consents").json
    assert [c["id"] for c in listed["items"]] == [body["id"]]


def test_consent_needs_valid_fields_and_dates_in_order(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    url = f"/api/v1/people/{person_id}/consents"
    cases = [
        ({"expires_at": "2027-01-01T00:00:00+00:00"}, "expires_at"),  # before given_at
        ({"expires_at": "2027-01-04T08:30:00+00:00"}, "expires_at"),  # equal to given_at
        ({"given_at": "2027-02-01T00:00:00Z", "expires_at": "2028-01-01T00:00:00Z"}, "given_at"),
        ({"given_at": "2026-01-01T00:00:00Z", "expires_at": "2026-06-01T00:00:00Z"},
         "expires_at"),  # already expired
        ({"given_at": "last tuesday"}, "given_at"),
        ({"lawful_basis": "because"}, "lawful_basis"),
        ({"condition": "consent"}, "condition"),
        ({"method": "telepathy"}, "method"),
        ({"purpose": "x" * 501}, "purpose"),
        ({"purpose": ""}, "purpose"),
        ({"organisation_id": "vcse-a"}, "organisation_id"),
        ({"organisation_id": 99999}, "organisation_id"),
        ({"recorded_by_user_id": 1}, "recorded_by_user_id"),
    ]
    for change, field in cases:
        response = coordinator.post(url, json=consent_body(demo, **change))
        assert response.status_code == 422, (change, response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert field in response.json["errors"], (change, response.json)
    assert _count(db, Consent) == 0


def test_only_consent_writers_in_scope_record_consent(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    url = f"/api/v1/people/{person_id}/consents"
    for name in ("peer", "vcse", "vcse-manager"):
        assert as_user(name).post(url, json=consent_body(demo)).status_code == 403, name
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    out_of_scope = as_user("lambeth").post(url, json=consent_body(demo))
    assert out_of_scope.status_code == 404
    assert "Amara" not in out_of_scope.get_data(as_text=True)
    assert _count(db, Consent) == 0


def test_vcse_callers_list_only_consents_naming_their_organisation(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    journey = add_journey(db, demo, person_id)
    add_referral(db, demo, journey, add_offer(db, demo, "vcse-a"))
    mine = add_consent(db, demo, person_id, "vcse-a", clock)
    add_consent(db, demo, person_id, "vcse-b", clock)
    listed = as_user("vcse").get(f"/api/v1/people/{person_id}/consents")
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json["items"]] == [mine.id]
    assert len(as_user("coordinator").get(
        f"/api/v1/people/{person_id}/consents").json["items"]) == 2


def test_consent_idempotency_key_replays_and_refuses_another_body(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    url = f"/api/v1/people/{person_id}/consents"
    headers = {"Idempotency-Key": "consent-1"}
    first = coordinator.post(url, json=consent_body(demo), headers=headers)
    retry = coordinator.post(url, json=consent_body(demo), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json and retry.headers["Idempotent-Replayed"] == "true"
    other = coordinator.post(url, json=consent_body(demo, method="written"), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json["errors"]
    assert _count(db, Consent) == 1
    assert _count(db, IdempotencyRecord) == 1


def _arrange_referred_person(as_user, demo, db, clock, status="in-progress"):
    person_id = register(as_user("coordinator")).json["id"]
    journey = add_journey(db, demo, person_id, status="active")
    mentoring = add_referral(db, demo, journey, add_offer(db, demo, "vcse-a"), status=status)
    coaching = add_referral(db, demo, journey,
                            add_offer(db, demo, "vcse-a", name="Peer coaching"),
                            status="completed")
    resilience = add_referral(db, demo, journey,
                              add_offer(db, demo, "vcse-b", name="Community Resilience Network"),
                              status="requested")
    consent = add_consent(db, demo, person_id, "vcse-a", clock)
    add_consent(db, demo, person_id, "vcse-b", clock)
    return person_id, journey, consent, mentoring, coaching, resilience


def test_vcse_user_loses_access_when_consent_withdrawn(as_user, demo, db, clock):
    person_id, journey, consent, mentoring, coaching, resilience = _arrange_referred_person(
        as_user, demo, db, clock)
    vcse = as_user("vcse")
    assert vcse.get(f"/api/v1/people/{person_id}").status_code == 200
    clock.advance(seconds=30)

    response = as_user("coordinator").post(f"/api/v1/consents/{consent.id}/withdraw",
                                           json={"reason": "Person asked us to stop sharing"})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "withdrawn"
    assert response.json["withdrawn_at"] == "2027-01-04T09:00:30+00:00"
    assert response.json["cancelled_referral_ids"] == [mentoring.id]

    # That organisation's users lose the person at once, and see nothing personal.
    gone = vcse.get(f"/api/v1/people/{person_id}")
    assert gone.status_code == 404
    assert "Amara" not in gone.get_data(as_text=True)
    assert as_user("vcse-manager").post("/api/v1/people/search",
                                        json={"nhs_number": "9991000011"}).json == {"items": []}
    # The open referral is cancelled with a coded reason and an event; closed ones are untouched.
    db.expire_all()
    cancelled = db.get(Referral, mentoring.id)
    assert (cancelled.status, cancelled.reason_code) == ("cancelled", "consent-withdrawn")
    assert cancelled.ended_at is not None and cancelled.version == 2
    [event] = db.exec(select(ReferralEvent).where(ReferralEvent.referral_id == mentoring.id)).all()
    assert (event.action, event.from_status, event.to_status, event.reason_code) == (
        "cancel", "in-progress", "cancelled", "consent-withdrawn")
    assert event.actor_user_id == demo["users"]["coordinator@demo.stepdown.test"].id
    assert db.get(Referral, coaching.id).status == "completed"
    # Another organisation's referral and access are unaffected.
    assert db.get(Referral, resilience.id).status == "requested"
    assert as_user("vcse-b").get(f"/api/v1/people/{person_id}").status_code == 200
    # The referral stays listable for the organisation as a tombstone.
    from service.auth.principal import Principal

    vcse_user = demo["users"]["vcse@demo.stepdown.test"]
    membership = next(m for m in _memberships(db, vcse_user.id))
    principal = Principal.for_membership(vcse_user, membership, "vcse")
    assert referral_access(db, principal, cancelled) == TOMBSTONE
    # The journey's statutory team is flagged to re-plan.
    [flag] = db.exec(select(Flag)).all()
    assert (flag.trigger, flag.urgency, flag.journey_id, flag.referral_id) == (
        "consent-withdrawn", "urgent", journey.id, None)
    assert flag.routed_team_id == journey.team_id
    audit = db.exec(select(AuditEvent).where(AuditEvent.action == "withdraw")).one()
    assert (audit.record_type, audit.record_id, audit.person_id) == (
        "consent", str(consent.id), person_id)


def _memberships(db, user_id):
    from models import Membership

    return db.exec(select(Membership).where(Membership.user_id == user_id)).all()


def test_withdrawal_without_an_active_journey_raises_no_flag(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    journey = add_journey(db, demo, person_id, status="planned")
    referral = add_referral(db, demo, journey, add_offer(db, demo, "vcse-a"), status="draft")
    consent = add_consent(db, demo, person_id, "vcse-a", clock)
    response = as_user("coordinator").post(f"/api/v1/consents/{consent.id}/withdraw",
                                           json={"reason": "Changed their mind"})
    assert response.status_code == 200
    db.expire_all()
    assert db.get(Referral, referral.id).status == "cancelled"  # drafts are open too
    assert _count(db, Flag) == 0


def test_withdrawal_is_refused_twice_and_out_of_scope(as_user, demo, db, clock):
    person_id, _journey, consent, *_ = _arrange_referred_person(as_user, demo, db, clock)
    coordinator = as_user("coordinator")
    url = f"/api/v1/consents/{consent.id}/withdraw"
    assert coordinator.post(url, json={}).status_code == 422
    assert coordinator.post(url, json={"reason": "x" * 1001}).status_code == 422
    assert as_user("vcse").post(url, json={"reason": "no"}).status_code == 403
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    assert as_user("lambeth").post(url, json={"reason": "no"}).status_code == 404
    for missing in (9999, 99999999999):
        assert coordinator.post(f"/api/v1/consents/{missing}/withdraw",
                                json={"reason": "no"}).status_code == 404
    db.expire_all()
    assert db.get(Consent, consent.id).withdrawn_at is None
    assert coordinator.post(url, json={"reason": "Asked to stop"}).status_code == 200
    again = coordinator.post(url, json={"reason": "Asked to stop"})
    assert again.status_code == 409
    assert _count(db, ReferralEvent) == 1


def test_stale_if_match_on_a_referral_cancelled_by_withdrawal(as_user, demo, db, clock):
    """A referral cancelled by withdrawal moves to a new version, so a VCSE user acting on the
    version they read is told it changed (no lost update)."""
    _person_id, _journey, consent, mentoring, *_ = _arrange_referred_person(
        as_user, demo, db, clock, status="requested")
    as_user("coordinator").post(f"/api/v1/consents/{consent.id}/withdraw",
                                json={"reason": "Asked to stop"})
    db.expire_all()
    assert db.get(Referral, mentoring.id).version == 2
