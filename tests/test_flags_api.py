"""The flags API: raising concerns, the duty queue, reading, acknowledging and resolving."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models import AuditEvent, Flag, FlagEvent, OutboxMessage
from service.flags.operations import raise_flag
from tests.test_flag_support import (
    PERSON_NAME,
    VALID_NHS_NUMBERS,
    flag_row,
    make_journey,
    make_offer,
    make_referral,
    make_scenario,
)

BRENT = "Brent Community Mental Health Team"
PROBLEM = "application/problem+json"


@pytest.fixture
def scenario(app, db, demo):
    return make_scenario(app, db, demo)


def _count(db, model) -> int:
    db.expire_all()
    return len(db.exec(select(model)).all())


def _concern(client, referral, **body):
    payload = {"referral_id": referral, "category": "deterioration", "urgency": "urgent"}
    payload.update(body)
    return client.post("/api/v1/flags", json=payload)


# --- raising a concern --------------------------------------------------------------------------

def test_vcse_worker_raises_a_concern_routed_to_the_owning_team(as_user, db, demo, scenario):
    response = _concern(as_user("vcse"), scenario["referral"].id,
                        description="Seems much lower in mood this week")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["trigger"] == "concern" and body["category"] == "deterioration"
    assert body["routed_team_id"] == demo["teams"][BRENT].id
    assert body["guidance"] is None and body["retriggered"] is False
    assert response.headers["ETag"] == f'"flag-{body["id"]}-v1"'
    assert response.headers["Location"] == f"/api/v1/flags/{body['id']}"
    flag = flag_row(db, body["id"])
    assert flag.raised_by_user_id == demo["users"]["vcse@demo.stepdown.test"].id
    audits = db.exec(select(AuditEvent).where(AuditEvent.record_type == "flag")).all()
    assert [(a.action, a.person_id) for a in audits] == [("raise", scenario["person_id"])]
    mail = db.exec(select(OutboxMessage)).one()
    assert mail.recipient == "brent-cmht@demo.stepdown.test"
    for secret in (*PERSON_NAME, VALID_NHS_NUMBERS[0], "mood"):
        assert secret not in mail.payload


def test_emergency_answers_with_999_guidance(as_user, scenario):
    response = _concern(as_user("vcse-manager"), scenario["referral"].id, urgency="emergency",
                        category="risk-to-self")
    assert response.status_code == 201
    guidance = response.get_json()["guidance"]
    assert guidance["level"] == "emergency"
    assert "call 999 or the crisis line now" in guidance["message"]
    assert "not an emergency channel" in guidance["message"]


def test_safeguarding_concern_reaches_the_safeguarding_team_too(as_user, db, demo, scenario):
    response = _concern(as_user("vcse"), scenario["referral"].id, category="safeguarding")
    body = response.get_json()
    assert body["also_routed_team_id"] == demo["teams"]["Safeguarding Team"].id
    # The safeguarding lead sees it in their queue and can work it.
    lead = as_user("safeguarding")
    queue = lead.get("/api/v1/flags?status=open").get_json()["items"]
    assert [f["id"] for f in queue] == [body["id"]]
    ack = lead.post(f"/api/v1/flags/{body['id']}/acknowledge", json={},
                    headers={"If-Match": f'"flag-{body["id"]}-v1"'})
    assert ack.status_code == 200


def test_the_same_concern_again_adds_to_the_open_flag(as_user, db, scenario):
    client = as_user("vcse")
    first = _concern(client, scenario["referral"].id).get_json()
    second = _concern(client, scenario["referral"].id, urgency="emergency")
    assert second.status_code == 200
    assert second.get_json()["id"] == first["id"]
    assert second.get_json()["retriggered"] is True
    assert second.get_json()["urgency"] == "emergency"
    assert second.get_json()["guidance"]["level"] == "emergency"
    assert _count(db, Flag) == 1


def test_peer_worker_may_raise_about_a_journey_of_their_team(as_user, demo, scenario):
    response = as_user("peer").post("/api/v1/flags", json={
        "journey_id": scenario["journey"].id, "category": "medication", "urgency": "routine"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["referral_id"] is None


@pytest.mark.parametrize("body, field", [
    ({"category": "bad-mood"}, "category"),
    ({"urgency": "soonish"}, "urgency"),
    ({"referral": None}, "referral_id"),
    ({"description": "x" * 4001}, "description"),
])
def test_bad_concerns_are_422_and_write_nothing(as_user, db, scenario, body, field):
    body = dict(body)
    referral = body.pop("referral", scenario["referral"].id)
    response = _concern(as_user("vcse"), referral, **body)
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert field in response.get_json()["errors"]
    assert _count(db, Flag) == 0 and _count(db, OutboxMessage) == 0


def test_vcse_must_name_a_referral(as_user, db, scenario):
    response = as_user("vcse").post("/api/v1/flags", json={
        "journey_id": scenario["journey"].id, "category": "medication", "urgency": "routine"})
    assert response.status_code == 422
    assert "referral_id" in response.get_json()["errors"]
    assert _count(db, Flag) == 0


def test_a_referral_to_another_organisation_is_404(as_user, db, scenario):
    response = _concern(as_user("vcse-b"), scenario["referral"].id)
    assert response.status_code == 404 and response.content_type == PROBLEM
    assert _count(db, Flag) == 0
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert [d.action for d in denied] == ["raise-flag"]


def test_roles_without_flags_raise_cannot_raise(as_user, scenario):
    assert _concern(as_user("contracts"), scenario["referral"].id).status_code == 403


def test_idempotency_key_replays_the_first_answer(as_user, db, scenario):
    client = as_user("vcse")
    body = {"referral_id": scenario["referral"].id, "category": "medication", "urgency": "urgent"}
    first = client.post("/api/v1/flags", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/api/v1/flags", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(db, FlagEvent) == 1


# --- the duty queue -----------------------------------------------------------------------------

def _raise_many(app, db, demo, count: int):
    """`count` flags on separate journeys, urgencies rotating, raised a minute apart."""
    with app.app_context():
        clock = app.extensions["stepdown.clock"]
        ids = []
        for i in range(count):
            journey = make_journey(db, demo, nhs_number=f"{9000000000 + i:010d}")
            flag = raise_flag(db, trigger="review-overdue", journey=journey,
                              urgency=("routine", "urgent", "emergency")[i % 3])
            ids.append(flag.id)
            clock.advance(minutes=1)
        db.commit()
    return ids


def test_queue_is_most_urgent_then_most_overdue_first_and_paginated(app, as_user, db, demo):
    _raise_many(app, db, demo, 7)
    client = as_user("duty")
    seen, cursor = [], None
    while True:
        url = "/api/v1/flags?status=open&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url)
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    ranks = {"emergency": 0, "urgent": 1, "routine": 2}
    keys = [(ranks[f["urgency"]], f["acknowledgement_due"], f["id"]) for f in seen]
    assert keys == sorted(keys)
    assert [f["urgency"] for f in seen[:2]] == ["emergency", "emergency"]
    audits = db.exec(select(AuditEvent).where(AuditEvent.action == "list")).all()
    assert len(audits) == 7 and all(a.person_id for a in audits)


def test_queue_query_count_does_not_grow_with_the_page(app, as_user, db, demo):
    _raise_many(app, db, demo, 12)
    client = as_user("duty")
    engine = app.extensions["stepdown.engine"]
    counts = []
    for limit in (2, 10):
        statements = []

        def count(conn, cursor, statement, *args, _seen=statements):  # noqa: ARG001
            _seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(f"/api/v1/flags?status=open&limit={limit}").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_queue_only_shows_my_teams_flags(app, as_user, db, demo, scenario):
    _concern(as_user("vcse"), scenario["referral"].id)
    assert len(as_user("duty").get("/api/v1/flags").get_json()["items"]) == 1
    assert as_user("safeguarding").get("/api/v1/flags").get_json()["items"] == []
    assert as_user("vcse").get("/api/v1/flags").status_code == 403  # no flags:read


def test_bad_queue_arguments(as_user, demo):
    client = as_user("duty")
    assert client.get("/api/v1/flags?status=closed").status_code == 422
    bad = client.get("/api/v1/flags?cursor=nonsense")
    assert bad.status_code == 422 and bad.content_type == PROBLEM


# --- one flag, acknowledge, resolve -------------------------------------------------------------

@pytest.fixture
def flag_id(as_user, scenario):
    return _concern(as_user("vcse"), scenario["referral"].id).get_json()["id"]


def test_read_one_flag_with_history_and_etag(as_user, db, flag_id, scenario):
    response = as_user("duty").get(f"/api/v1/flags/{flag_id}")
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"flag-{flag_id}-v1"'
    assert [e["kind"] for e in response.get_json()["events"]] == ["raised"]
    read = db.exec(select(AuditEvent).where(AuditEvent.action == "read",
                                            AuditEvent.record_type == "flag")).one()
    assert read.person_id == scenario["person_id"]


def test_someone_elses_flag_is_404_for_read_acknowledge_and_resolve(as_user, db, flag_id):
    other = as_user("safeguarding")  # a duty clinician of another team
    assert other.get(f"/api/v1/flags/{flag_id}").status_code == 404
    ack = other.post(f"/api/v1/flags/{flag_id}/acknowledge", json={},
                     headers={"If-Match": f'"flag-{flag_id}-v1"'})
    assert ack.status_code == 404 and ack.content_type == PROBLEM
    res = other.post(f"/api/v1/flags/{flag_id}/resolve", json={"outcome": "no-action"},
                     headers={"If-Match": f'"flag-{flag_id}-v1"'})
    assert res.status_code == 404
    flag = flag_row(db, flag_id)
    assert flag.status == "open" and flag.version == 1
    assert _count(db, FlagEvent) == 1


def test_acknowledge_needs_if_match_and_happens_once(as_user, db, demo, flag_id):
    duty = as_user("duty")
    url = f"/api/v1/flags/{flag_id}/acknowledge"
    assert duty.post(url, json={}).status_code == 428
    stale = duty.post(url, json={}, headers={"If-Match": f'"flag-{flag_id}-v9"'})
    assert stale.status_code == 412 and stale.headers["ETag"] == f'"flag-{flag_id}-v1"'
    ok = duty.post(url, json={"note": "Calling them now"}, headers={"If-Match": f'"flag-{flag_id}-v1"'})
    assert ok.status_code == 200
    body = ok.get_json()
    assert body["status"] == "acknowledged" and ok.headers["ETag"] == f'"flag-{flag_id}-v2"'
    assert body["acknowledged_by_user_id"] == demo["users"]["duty@demo.stepdown.test"].id
    again = duty.post(url, json={}, headers={"If-Match": f'"flag-{flag_id}-v2"'})
    assert again.status_code == 409
    kinds = [e.kind for e in db.exec(select(FlagEvent).order_by(FlagEvent.id)).all()]
    assert kinds == ["raised", "acknowledged"]


def test_resolve_needs_an_outcome(as_user, db, flag_id):
    duty = as_user("duty")
    url = f"/api/v1/flags/{flag_id}/resolve"
    for body in ({}, {"outcome": "sorted"}):
        response = duty.post(url, json=body, headers={"If-Match": f'"flag-{flag_id}-v1"'})
        assert response.status_code == 422 and response.content_type == PROBLEM
        assert "outcome" in response.get_json()["errors"]
    assert flag_row(db, flag_id).status == "open"
    assert _count(db, FlagEvent) == 1


def test_resolve_with_advice(as_user, db, flag_id):
    duty = as_user("coordinator")
    response = duty.post(f"/api/v1/flags/{flag_id}/resolve",
                         json={"outcome": "advice-given", "note": "Spoke to the worker"},
                         headers={"If-Match": f'"flag-{flag_id}-v1"'})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["outcome"]) == ("resolved", "advice-given")
    assert body["acknowledged_at"] is not None and body["resolved_at"] is not None
    assert duty.post(f"/api/v1/flags/{flag_id}/resolve", json={"outcome": "no-action"},
                     headers={"If-Match": f'"flag-{flag_id}-v2"'}).status_code == 409
    audits = [a.action for a in db.exec(select(AuditEvent).where(
        AuditEvent.record_type == "flag").order_by(AuditEvent.id)).all()]
    assert audits == ["raise", "resolve"]


def test_openapi_lists_the_flag_routes(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/flags", "/api/v1/flags/{flag_id}", "/api/v1/flags/{flag_id}/acknowledge",
                 "/api/v1/flags/{flag_id}/resolve", "/api/v1/journeys/{journey_id}/step-up"):
        assert path in spec["paths"], path


def test_emails_carry_no_personal_data(app, db, demo):
    with app.app_context():
        journey = make_journey(db, demo)
        referral = make_referral(db, demo, journey, make_offer(db, demo))
        raise_flag(db, trigger="concern", journey=journey, referral=referral, urgency="urgent",
                   category="safeguarding", description=f"{PERSON_NAME[0]} said something")
        db.commit()
    for message in db.exec(select(OutboxMessage)).all():
        text = json.dumps(json.loads(message.payload))
        for secret in (*PERSON_NAME, VALID_NHS_NUMBERS[0]):
            assert secret not in text
