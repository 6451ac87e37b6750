"""A draft's handover changed through the API (PATCH /api/v1/referrals/{id}), as an EPR would
before sending: only the referring team, the version it read, nothing once it has been sent."""

from __future__ import annotations

from sqlmodel import select

from models import AuditEvent, Referral
from tests.test_referral_support import act, create_referral, ok
from tests.test_referral_support import world as _world_fixture

world = _world_fixture


def _patch(client, referral_id: int, body: dict, if_match: str | None):
    headers = {"If-Match": if_match} if if_match else {}
    return client.patch(f"/api/v1/referrals/{referral_id}", json=body, headers=headers)


def test_the_referring_team_changes_a_draft_handover_and_sends_it(world):
    created = create_referral(world.coordinator, world.journey.id, world.offer.id)
    rid, tag = ok(created, 201)["id"], created.headers["ETag"]
    response = _patch(world.coordinator, rid, {"goals": "Walk to the allotment each week.",
                                               "relapse_signs": None}, tag)
    body = ok(response)
    assert body["handover"]["goals"] == "Walk to the allotment each week."
    assert body["handover"]["relapse_signs"] is None
    assert body["handover"]["crisis_plan"]  # not given: unchanged
    assert response.headers["ETag"] != tag
    world.db.expire_all()
    assert world.db.get(Referral, rid).goals == "Walk to the allotment each week."
    audited = world.db.exec(select(AuditEvent.action).where(
        AuditEvent.record_type == "referral", AuditEvent.record_id == str(rid))).all()
    assert "update" in audited
    # The old ETag is stale now; the new one sends it, with the changed handover.
    assert _patch(world.coordinator, rid, {"goals": "x"}, tag).status_code == 412
    sent = ok(act(world.coordinator, rid, "send", if_match=response.headers["ETag"]))
    assert sent["status"] == "requested"


def test_a_draft_update_needs_if_match_valid_fields_and_a_draft(world):
    created = create_referral(world.coordinator, world.journey.id, world.offer.id)
    rid, tag = ok(created, 201)["id"], created.headers["ETag"]
    assert _patch(world.coordinator, rid, {"goals": "New"}, None).status_code == 428
    for body, field in (({}, "_schema"), ({"goals": ""}, "goals"), ({"goals": "x" * 4001}, "goals"),
                        ({"crisis_plan": None}, "crisis_plan"), ({"unknown": "x"}, "unknown")):
        refused = _patch(world.coordinator, rid, body, tag)
        assert refused.status_code == 422, (body, refused.get_json())
        assert refused.mimetype == "application/problem+json"
        assert field in refused.get_json()["errors"]
    world.db.expire_all()
    assert world.db.get(Referral, rid).version == 1  # nothing written
    sent = ok(act(world.coordinator, rid, "send", if_match=tag))
    after_send = _patch(world.coordinator, rid, {"goals": "Too late"}, f'"referral-{rid}-v{sent["version"]}"')
    assert after_send.status_code == 409


def test_only_the_referring_team_sees_or_changes_a_draft(world):
    created = create_referral(world.coordinator, world.journey.id, world.offer.id)
    rid, tag = ok(created, 201)["id"], created.headers["ETag"]
    refused = _patch(world.vcse, rid, {"goals": "Not yours"}, tag)
    assert refused.status_code == 403  # VCSE staff cannot refer at all: refused before any lookup
    assert world.person.family_name not in refused.get_data(as_text=True)
    world.db.expire_all()
    assert world.db.get(Referral, rid).goals != "Not yours"
