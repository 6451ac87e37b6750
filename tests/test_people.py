"""People: registration, search by NHS number, scoped reads, role-shaped responses, PATCH."""

from __future__ import annotations

import json

from sqlmodel import func, select

from models import AuditEvent, Person, PersonNeed
from tests.people_fixtures import (
    add_consent,
    add_journey,
    add_offer,
    add_referral,
    add_user,
    invalid_check_digit,
    person_body,
    register,
    test_range_nhs_number,
)

NHS = test_range_nhs_number(1)


def _count(db, model) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(model)).one()


def _events(db, **where):
    db.expire_all()
    query = select(AuditEvent).order_by(AuditEvent.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return db.exec(query).all()


def _referred_to_vcse_a(db, demo, clock, person_id, status="requested"):
    """Arrange: a journey of the Brent CMHT, a sent referral to vcse-a, consent to vcse-a."""
    journey = add_journey(db, demo, person_id)
    referral = add_referral(db, demo, journey, add_offer(db, demo, "vcse-a"), status=status)
    consent = add_consent(db, demo, person_id, "vcse-a", clock)
    return journey, referral, consent


def test_care_coordinator_registers_a_person(as_user, demo, db):
    response = register(as_user("coordinator"), nhs_number="999 100 0011")
    assert response.status_code == 201, response.json
    body = response.json
    assert body["nhs_number"] == "9991000011"  # stored normalised
    assert body["postcode_district"] == "NW10"
    assert body["needs"] == ["peer-support", "social-connection"]
    assert body["about_me"]["strengths"] == "I'm a good cook"
    assert body["about_me"]["updated_by"] == "Casey Coordinator"
    assert body["about_me"]["updated_at"] == "2027-01-04T09:00:00+00:00"
    assert body["created_by_organisation_id"] == demo["organisations"]["trust-a"].id
    assert response.headers["ETag"] == f'"person-{body["id"]}-v1"'
    person = db.get(Person, body["id"])
    assert person.nhs_number == "9991000011"
    assert _count(db, PersonNeed) == 2
    [event] = _events(db, record_type="person")
    assert (event.action, event.person_id, event.outcome) == ("create", body["id"], "allowed")


def test_only_statutory_people_writers_register(as_user, demo, db):
    for name in ("peer", "vcse", "vcse-manager", "duty", "admin"):
        assert register(as_user(name)).status_code == 403, name
    assert _count(db, Person) == 0


def test_invalid_nhs_numbers_are_refused_without_echoing_them(as_user, demo, db):
    coordinator = as_user("coordinator")
    for bad in (invalid_check_digit(NHS), "123", "99910000111", "999-100-001X", "", 9991000011,
                None, ["9991000011"]):
        response = register(coordinator, nhs_number=bad)
        assert response.status_code == 422, bad
        assert response.headers["Content-Type"] == "application/problem+json"
        assert list(response.json["errors"]) == ["nhs_number"]
        text = response.get_data(as_text=True)
        if isinstance(bad, str) and len(bad) > 3:
            assert bad not in text and bad.replace("-", "") not in text
    assert _count(db, Person) == 0


def test_duplicate_nhs_number_is_a_conflict_without_echoing_it(as_user, demo, db):
    coordinator = as_user("coordinator")
    assert register(coordinator).status_code == 201
    response = register(coordinator, nhs_number=f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}",
                        given_name="Someone", family_name="Else")
    assert response.status_code == 409
    assert response.json["errors"] == {"nhs_number": [
        "A person with this NHS number is already registered"]}
    text = response.get_data(as_text=True)
    assert NHS not in text and NHS[:3] + " " + NHS[3:6] not in text
    assert _count(db, Person) == 1


def test_invalid_fields_are_refused_naming_the_field_and_nothing_is_written(as_user, demo, db):
    coordinator = as_user("coordinator")
    cases = [
        ({"date_of_birth": "14/03/1991"}, "date_of_birth"),
        ({"date_of_birth": 19910314}, "date_of_birth"),
        ({"date_of_birth": "2030-01-01"}, "date_of_birth"),
        ({"date_of_birth": "1850-01-01"}, "date_of_birth"),
        ({"given_name": ""}, "given_name"),
        ({"given_name": 42}, "given_name"),
        ({"family_name": "x" * 101}, "family_name"),
        ({"communication_needs": "x" * 2001}, "communication_needs"),
        ({"about_me": {"strengths": "x" * 4001}}, "about_me"),
        ({"about_me": {"favourite_colour": "blue"}}, "about_me"),
        ({"postcode_district": "NW10 3AB"}, "postcode_district"),
        ({"sex": "m"}, "sex"),
        ({"needs": ["flying-lessons"]}, "needs"),
        ({"needs": "peer-support"}, "needs"),
        ({"religion": "none"}, "religion"),
    ]
    for change, field in cases:
        response = register(coordinator, **change)
        assert response.status_code == 422, (change, response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert field in response.json["errors"], (change, response.json)
    body = person_body()
    del body["given_name"]
    response = coordinator.post("/api/v1/people", json=body)
    assert response.status_code == 422 and "given_name" in response.json["errors"]
    assert _count(db, Person) == 0
    assert _count(db, PersonNeed) == 0


def test_registering_organisation_reads_the_full_record(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    response = as_user("duty").get(f"/api/v1/people/{person_id}")
    assert response.status_code == 200
    assert response.json["nhs_number"] == NHS
    assert response.json["date_of_birth"] == "1991-03-14"
    assert response.headers["ETag"] == f'"person-{person_id}-v1"'
    reads = _events(db, action="read", record_type="person")
    assert [(e.person_id, e.actor_role) for e in reads] == [(person_id, "duty_clinician")]


def test_another_organisation_gets_404_with_no_personal_data(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    for name in ("lambeth", "vcse", "vcse-b"):
        client = as_user(name)
        for response in (
            client.get(f"/api/v1/people/{person_id}"),
            client.get(f"/api/v1/people/{person_id}/consents"),
            client.post("/api/v1/people/search", json={"nhs_number": NHS}),
        ):
            text = response.get_data(as_text=True)
            for secret in (NHS, "Amara", "Okafor", "1991-03-14", "good cook", "NW10"):
                assert secret not in text, (name, secret)
        assert client.get(f"/api/v1/people/{person_id}").status_code == 404
        search = client.post("/api/v1/people/search", json={"nhs_number": NHS})
        assert search.status_code == 200 and search.json == {"items": []}
    # A person who does not exist looks the same as one out of scope.
    missing = as_user("lambeth").get("/api/v1/people/424242")
    assert missing.status_code == 404
    assert missing.json["detail"] == as_user("lambeth").get(
        f"/api/v1/people/{person_id}").json["detail"]
    denied = _events(db, outcome="denied", person_id=person_id)
    assert len(denied) >= 6


def test_trust_b_sees_the_person_once_its_team_owns_a_journey(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    add_user(db, demo, "lambeth@demo.stepdown.test", "trust-b", "care_coordinator",
             "Lambeth Community Mental Health Team")
    add_journey(db, demo, person_id, team_name="Lambeth Community Mental Health Team")
    assert as_user("lambeth").get(f"/api/v1/people/{person_id}").status_code == 200
    # The registering organisation's access ended when another team took the journey.
    assert as_user("coordinator").get(f"/api/v1/people/{person_id}").status_code == 404


def test_vcse_caller_sees_the_minimum_necessary(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    _referred_to_vcse_a(db, demo, clock, person_id)
    response = as_user("vcse").get(f"/api/v1/people/{person_id}")
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == {"id", "given_name", "family_name", "preferred_name", "pronouns",
                         "communication_needs", "postcode_district", "about_me", "version"}
    assert body["about_me"]["what_matters"] == "My daughter"
    text = response.get_data(as_text=True)
    assert NHS not in text and "1991-03-14" not in text and "Brent" not in text
    found = as_user("vcse").post("/api/v1/people/search", json={"nhs_number": NHS})
    assert [p["id"] for p in found.json["items"]] == [person_id]
    assert "nhs_number" not in found.json["items"][0]
    # A draft referral is not yet shared; another VCSE organisation sees nothing.
    assert as_user("vcse-b").get(f"/api/v1/people/{person_id}").status_code == 404


def test_draft_referral_does_not_share_the_person(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    _referred_to_vcse_a(db, demo, clock, person_id, status="draft")
    assert as_user("vcse").get(f"/api/v1/people/{person_id}").status_code == 404


def test_search_finds_by_nhs_number_in_any_layout_and_is_audited(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    for layout in (NHS, f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}", f"{NHS[:3]}-{NHS[3:6]}-{NHS[6:]}"):
        response = coordinator.post("/api/v1/people/search", json={"nhs_number": layout})
        assert [p["id"] for p in response.json["items"]] == [person_id]
    other = coordinator.post("/api/v1/people/search",
                             json={"nhs_number": test_range_nhs_number(500)})
    assert other.json == {"items": []}
    bad = coordinator.post("/api/v1/people/search", json={"nhs_number": invalid_check_digit(NHS)})
    assert bad.status_code == 422 and list(bad.json["errors"]) == ["nhs_number"]
    assert len(_events(db, action="search", person_id=person_id)) == 3
    # NHS numbers never travel in a URL: no route takes one.
    assert coordinator.get(f"/api/v1/people/{NHS}").status_code == 404


def _patch(client, person_id, body, etag=None):
    if etag is None:
        etag = client.get(f"/api/v1/people/{person_id}").headers["ETag"]
    return client.patch(f"/api/v1/people/{person_id}", json=body, headers={"If-Match": etag})


def test_peer_worker_edits_about_me_and_it_records_who_and_when(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    clock.advance(days=2)
    peer = as_user("peer")
    response = _patch(peer, person_id, {"about_me": {"what_helps": "Walking and talking"}})
    assert response.status_code == 200, response.json
    about = response.json["about_me"]
    assert about["what_helps"] == "Walking and talking"
    assert about["strengths"] == "I'm a good cook"  # untouched
    assert about["updated_by"] == "Pat Peer"
    assert about["updated_at"] == "2027-01-06T09:00:00+00:00"
    assert response.json["version"] == 2
    db.expire_all()
    person = db.get(Person, person_id)
    assert person.about_updated_by_user_id == demo["users"]["peer@demo.stepdown.test"].id
    [update] = _events(db, action="update", person_id=person_id)
    assert update.actor_role == "peer_worker"


def test_peer_worker_cannot_change_other_fields(as_user, demo, db):
    person_id = register(as_user("coordinator")).json["id"]
    peer = as_user("peer")
    response = _patch(peer, person_id, {"given_name": "Changed",
                                        "about_me": {"strengths": "x"}})
    assert response.status_code == 403
    db.expire_all()
    assert db.get(Person, person_id).given_name == "Amara"


def test_care_coordinator_changes_fields_and_needs(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    response = _patch(coordinator, person_id, {
        "preferred_name": None, "pronouns": "they/them", "needs": ["housing-advice"],
        "postcode_district": "ha9", "nhs_number": test_range_nhs_number(77)})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["preferred_name"] is None and body["pronouns"] == "they/them"
    assert body["needs"] == ["housing-advice"] and body["postcode_district"] == "HA9"
    assert body["nhs_number"] == test_range_nhs_number(77)
    assert response.headers["ETag"] == f'"person-{person_id}-v2"'


def test_patch_needs_a_current_if_match(as_user, demo, db):
    coordinator = as_user("coordinator")
    person_id = register(coordinator).json["id"]
    url = f"/api/v1/people/{person_id}"
    assert coordinator.patch(url, json={"pronouns": "he/him"}).status_code == 428
    stale = coordinator.patch(url, json={"pronouns": "he/him"}, headers={"If-Match": '"person-1-v0"'})
    assert stale.status_code == 412
    assert stale.headers["ETag"] == f'"person-{person_id}-v1"'
    first_etag = f'"person-{person_id}-v1"'
    assert _patch(coordinator, person_id, {"pronouns": "he/him"}, first_etag).status_code == 200
    assert _patch(coordinator, person_id, {"pronouns": "she/her"}, first_etag).status_code == 412


def test_patch_refuses_bad_values_and_duplicates(as_user, demo, db):
    coordinator = as_user("coordinator")
    first = register(coordinator).json["id"]
    second = register(coordinator, nhs_number=test_range_nhs_number(2)).json["id"]
    conflict = _patch(coordinator, second, {"nhs_number": NHS})
    assert conflict.status_code == 409 and NHS not in conflict.get_data(as_text=True)
    for change, field in [({"date_of_birth": "not a date"}, "date_of_birth"),
                          ({"about_me": {"strengths": "x" * 4001}}, "about_me"),
                          ({"needs": ["unknown-duty"]}, "needs"),
                          ({"nhs_number": invalid_check_digit(NHS)}, "nhs_number"),
                          ({"id": 5}, "id")]:
        response = _patch(coordinator, first, change)
        assert response.status_code == 422, change
        assert field in response.json["errors"]
    db.expire_all()
    assert db.get(Person, first).version == 1
    assert db.get(Person, second).nhs_number == test_range_nhs_number(2)


def test_vcse_user_cannot_patch_a_person(as_user, demo, db, clock):
    person_id = register(as_user("coordinator")).json["id"]
    _referred_to_vcse_a(db, demo, clock, person_id)
    response = _patch(as_user("vcse"), person_id, {"about_me": {"strengths": "x"}})
    assert response.status_code == 403


def test_idempotent_retry_returns_the_first_response_with_one_row(as_user, demo, db):
    coordinator = as_user("coordinator")
    headers = {"Idempotency-Key": "register-amara-1"}
    first = coordinator.post("/api/v1/people", json=person_body(), headers=headers)
    assert first.status_code == 201
    # The same JSON in another key order is the same request.
    reordered = json.loads(json.dumps(dict(reversed(list(person_body().items())))))
    retry = coordinator.post("/api/v1/people", json=reordered, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json == first.json
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert retry.headers["Location"] == first.headers["Location"]
    assert _count(db, Person) == 1
    other = coordinator.post("/api/v1/people", json=person_body(given_name="Other"),
                             headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json["errors"]
    assert _count(db, Person) == 1


def test_pages_pass_the_version_they_showed_instead_of_if_match(as_user, demo, db):
    import pytest

    from models import Membership
    from service.auth.principal import Principal
    from service.errors import PreconditionFailed
    from service.people.operations import update_person

    person_id = register(as_user("coordinator")).json["id"]
    user = demo["users"]["peer@demo.stepdown.test"]
    membership = db.exec(select(Membership).where(Membership.user_id == user.id)).one()
    actor = Principal.for_membership(user, membership, "statutory")
    with pytest.raises(PreconditionFailed):
        update_person(db, actor, person_id, {"about_me": {"strengths": "x"}}, expected_version=7)
    db.rollback()
    shaped = update_person(db, actor, person_id, {"about_me": {"strengths": "Patient"}},
                           expected_version=1)
    db.commit()
    assert shaped["version"] == 2 and shaped["about_me"]["strengths"] == "Patient"
