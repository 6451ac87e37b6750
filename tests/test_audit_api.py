"""GET /audit?person=…: who has seen or changed a person's record (subject access requests)."""

from __future__ import annotations

from tests.people_fixtures import add_journey, add_user, register


def _trail(client, person_id, query=""):
    return client.get(f"/api/v1/audit?person={person_id}{query}")


def test_owning_team_sees_who_read_and_changed_the_record(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    as_user("duty").get(f"/api/v1/people/{person_id}")
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    assert as_user("lambeth").get(f"/api/v1/people/{person_id}").status_code == 404

    response = _trail(coordinator, person_id)
    assert response.status_code == 200, response.json
    items = response.json["items"]
    rows = [(i["action"], i["record_type"], i["outcome"], i["actor_user_name"], i["actor_role"],
             i["actor_organisation"]) for i in items]
    assert rows == [  # newest first
        ("read", "person", "denied", "Lambeth", "care_coordinator",
         "South Thames Community Health NHS Trust"),
        ("read", "person", "allowed", "Dana Duty", "duty_clinician",
         "North Thames Mental Health NHS Trust"),
        ("create", "person", "allowed", "Casey Coordinator", "care_coordinator",
         "North Thames Mental Health NHS Trust"),
    ]
    assert all(i["at"] and i["record_id"] == str(person_id) for i in items)
    assert set(items[0]) == {"id", "at", "actor_user_name", "actor_client_name", "actor_role",
                             "actor_organisation", "action", "record_type", "record_id",
                             "outcome"}
    text = response.get_data(as_text=True)
    assert "9991000011" not in text and "Amara" not in text


def test_trail_shows_only_this_person(as_user, demo):
    coordinator = as_user("coordinator")
    first = register(coordinator).json["id"]
    second = register(coordinator, nhs_number="9992000023").json["id"]
    coordinator.get(f"/api/v1/people/{second}")
    records = {i["record_id"] for i in _trail(coordinator, first).json["items"]}
    assert records == {str(first)}


def test_org_admin_of_the_owning_organisation_may_read_the_trail(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    assert _trail(as_user("admin"), person_id).status_code == 200
    # The trail read is itself audited, and shows in the next read.
    actions = [(i["action"], i["record_type"], i["actor_role"])
               for i in _trail(as_user("admin"), person_id).json["items"]]
    assert actions[0] == ("read", "audit", "org_admin")


def test_others_get_404_and_the_refusal_is_audited(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    add_user(db, demo, "admin-lambeth@demo.stepdown.test", "trust-b", "org_admin")
    for name in ("lambeth", "admin-lambeth", "admin-b"):
        response = _trail(as_user(name), person_id)
        assert response.status_code == 404, name
        assert "Amara" not in response.get_data(as_text=True)
    for name in ("peer", "vcse", "contracts"):
        assert _trail(as_user(name), person_id).status_code == 403, name
    assert _trail(as_user("admin"), 424242).status_code == 404
    assert _trail(as_user("admin"), 99999999999).status_code == 422
    denied = [i for i in _trail(as_user("coordinator"), person_id).json["items"]
              if i["record_type"] == "audit"]
    assert {i["outcome"] for i in denied} == {"denied"} and len(denied) == 3


def test_when_another_team_owns_the_journey_access_moves_with_it(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    add_user(db, demo, "admin-lambeth@demo.stepdown.test", "trust-b", "org_admin")
    add_journey(db, demo, person_id, team_name="Lambeth Community Mental Health Team")
    assert _trail(as_user("lambeth"), person_id).status_code == 200
    assert _trail(as_user("admin-lambeth"), person_id).status_code == 200
    # Trust A registered the person, so its org admin may still answer a subject access request.
    assert _trail(as_user("admin"), person_id).status_code == 200
    # Trust A's team no longer owns the record.
    assert _trail(as_user("coordinator"), person_id).status_code == 404


def test_trail_is_keyset_paginated(as_user, demo):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    for _ in range(4):
        coordinator.get(f"/api/v1/people/{person_id}")
    seen, after = [], None
    while True:
        page = _trail(coordinator, person_id, "&limit=2" + (f"&after={after}" if after else ""))
        assert page.status_code == 200
        seen += [i["id"] for i in page.json["items"]]
        after = page.json["next_after"]
        if after is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
    assert len(seen) >= 5
    assert _trail(coordinator, "x").status_code == 422
    assert coordinator.get("/api/v1/audit").status_code == 422
