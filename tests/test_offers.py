"""Offers: a directory all staff read; managed only by the VCSE organisation running each."""

from __future__ import annotations

from sqlmodel import func, select

from models import AuditEvent, Offer, OfferArea

OFFER = {
    "name": "Peer mentoring",
    "description": "Weekly one-to-one mentoring with a peer mentor.",
    "min_age": 18,
    "max_age": 65,
    "eligibility": "Adults stepping down from secondary care",
    "capacity": "capacity",
    "response_target_days": 5,
    "status": "active",
    "assured_date": "2026-09-01",
    "areas": ["Brent", "nw10"],
    "responsibilities": ["peer-support", "social-connection"],
}


def _create(client, **overrides):
    return client.post("/api/v1/offers", json={**OFFER, **overrides})


def test_vcse_manager_creates_an_offer_for_their_organisation(as_user, demo, db):
    response = _create(as_user("vcse-manager"))
    assert response.status_code == 201, response.json
    body = response.json
    assert body["organisation_id"] == demo["organisations"]["vcse-a"].id
    assert body["organisation_name"] == "Brent Peer Mentors"
    assert body["areas"] == ["Brent", "NW10"]  # postcode districts normalised
    assert body["responsibilities"] == ["peer-support", "social-connection"]
    assert response.headers["ETag"] == f'"offer-{body["id"]}-v1"'
    assert response.headers["Location"] == f"/api/v1/offers/{body['id']}"
    assert db.exec(select(AuditEvent).where(AuditEvent.record_type == "offer",
                                            AuditEvent.action == "create")).one()


def test_only_offer_managers_of_a_vcse_organisation_may_create(as_user, demo, db):
    assert _create(as_user("vcse")).status_code == 403  # vcse_worker
    assert _create(as_user("coordinator")).status_code == 403
    assert _create(as_user("vcse-manager"),
                   organisation_id=demo["organisations"]["vcse-b"].id).status_code == 403
    assert db.exec(select(func.count()).select_from(Offer)).one() == 0


def test_staff_read_offers_and_each_has_an_etag(as_user, demo):
    offer_id = _create(as_user("vcse-manager")).json["id"]
    for name in ("coordinator", "vcse-b", "contracts", "peer"):
        response = as_user(name).get(f"/api/v1/offers/{offer_id}")
        assert response.status_code == 200, name
        assert response.headers["ETag"] == f'"offer-{offer_id}-v1"'
    assert as_user("coordinator").get("/api/v1/offers/99999").status_code == 404
    assert as_user("coordinator").get("/api/v1/offers/99999999999").status_code == 404
    assert as_user("coordinator").get("/api/v1/offers?after=99999999999").status_code == 422


def test_filters_by_area_age_need_capacity_and_status(as_user, demo):
    manager = as_user("vcse-manager")
    mentoring = _create(manager).json["id"]
    youth = _create(manager, name="Youth peer group", min_age=16, max_age=25,
                    areas=["HA9"], capacity="waitlist").json["id"]
    housing = _create(manager, name="Housing advice", min_age=None, max_age=None, areas=[],
                      responsibilities=["housing-advice"], status="temporarily closed").json["id"]
    reader = as_user("coordinator")

    def ids(query: str) -> list[int]:
        response = reader.get(f"/api/v1/offers?{query}")
        assert response.status_code == 200, response.json
        return [item["id"] for item in response.json["items"]]

    assert ids("") == [mentoring, youth, housing]
    # An offer that lists no areas serves everywhere.
    assert ids("area=NW10") == [mentoring, housing]
    assert ids("area=brent") == [mentoring, housing]
    assert ids("area=ha9") == [youth, housing]
    assert ids("age=17") == [youth, housing]
    assert ids("age=40") == [mentoring, housing]
    assert ids("need=peer-support") == [mentoring, youth]
    assert ids("need=housing-advice") == [housing]
    assert ids("capacity=waitlist") == [youth]
    assert ids("status=active") == [mentoring, youth]
    assert ids("status=temporarily%20closed") == [housing]
    assert ids("area=NW10&age=40&need=peer-support&status=active") == [mentoring]
    bad = reader.get("/api/v1/offers?capacity=lots&age=old")
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"query.capacity", "query.age"}


def test_offers_are_keyset_paginated(as_user, demo):
    manager = as_user("vcse-manager")
    created = [_create(manager, name=f"Offer {n}").json["id"] for n in range(5)]
    reader = as_user("coordinator")
    seen, after = [], None
    while True:
        query = "limit=2" + (f"&after={after}" if after else "")
        page = reader.get(f"/api/v1/offers?{query}").json
        seen += [item["id"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == created


def test_patch_needs_if_match_and_bumps_the_version(as_user, demo):
    manager = as_user("vcse-manager")
    offer_id = _create(manager).json["id"]
    url = f"/api/v1/offers/{offer_id}"
    assert manager.patch(url, json={"capacity": "waitlist"}).status_code == 428
    stale = manager.patch(url, json={"capacity": "waitlist"}, headers={"If-Match": '"offer-1-v9"'})
    assert stale.status_code == 412
    etag = manager.get(url).headers["ETag"]
    response = manager.patch(url, headers={"If-Match": etag}, json={
        "capacity": "waitlist", "waitlist_weeks": 6, "status": "temporarily closed",
        "areas": ["Harrow"], "responsibilities": ["peer-support"], "eligibility": "Over 18s"})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["capacity"], body["waitlist_weeks"], body["status"]) == (
        "waitlist", 6, "temporarily closed")
    assert body["areas"] == ["Harrow"]
    assert body["responsibilities"] == ["peer-support"]
    assert body["version"] == 2
    assert response.headers["ETag"] == f'"offer-{offer_id}-v2"'
    # The old ETag is now stale.
    again = manager.patch(url, json={"capacity": "capacity"}, headers={"If-Match": etag})
    assert again.status_code == 412


def test_another_organisation_cannot_change_an_offer(as_user, demo, app, db):
    from tests.people_fixtures import add_user

    offer_id = _create(as_user("vcse-manager")).json["id"]
    add_user(db, demo, "manager-b@demo.stepdown.test", "vcse-b", "vcse_manager",
             "Resilience Network Team")
    other = as_user("manager-b")
    etag = other.get(f"/api/v1/offers/{offer_id}").headers["ETag"]
    response = other.patch(f"/api/v1/offers/{offer_id}", json={"capacity": "no-capacity"},
                           headers={"If-Match": etag})
    assert response.status_code == 403
    assert as_user("vcse").patch(f"/api/v1/offers/{offer_id}", json={"capacity": "waitlist"},
                                 headers={"If-Match": etag}).status_code == 403
    assert db.get(Offer, offer_id).capacity == "capacity"
    assert as_user("vcse-manager").patch("/api/v1/offers/9999", json={"capacity": "waitlist"},
                                         headers={"If-Match": "*"}).status_code == 404


def test_invalid_offers_are_refused_naming_the_field(as_user, demo, db):
    manager = as_user("vcse-manager")
    cases = [
        ({"capacity": "plenty"}, "capacity"),
        ({"status": "open"}, "status"),
        ({"min_age": 40, "max_age": 18}, "max_age"),
        ({"min_age": "eighteen"}, "min_age"),
        ({"name": "x" * 201}, "name"),
        ({"description": "x" * 4001}, "description"),
        ({"responsibilities": ["no-such-duty"]}, "responsibilities"),
        ({"responsibilities": ["medication-management"]}, "responsibilities"),
        ({"areas": "Brent"}, "areas"),
        ({"response_target_days": -1}, "response_target_days"),
        ({"assured_date": "yesterday"}, "assured_date"),
        ({"colour": "green"}, "colour"),
    ]
    for change, field in cases:
        response = _create(manager, **change)
        assert response.status_code == 422, (change, response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert field in response.json["errors"], (change, response.json)
    assert db.exec(select(func.count()).select_from(Offer)).one() == 0
    assert db.exec(select(func.count()).select_from(OfferArea)).one() == 0


def test_invalid_patch_changes_nothing(as_user, demo, db):
    manager = as_user("vcse-manager")
    created = _create(manager)
    offer_id, etag = created.json["id"], created.headers["ETag"]
    url = f"/api/v1/offers/{offer_id}"
    for change, field in [({"min_age": 70}, "max_age"), ({"capacity": None}, "capacity"),
                          ({"areas": ["Harrow"], "responsibilities": ["crisis-response"]},
                           "responsibilities")]:
        response = manager.patch(url, json=change, headers={"If-Match": etag})
        assert response.status_code == 422, change
        assert field in response.json["errors"]
    db.expire_all()
    offer = db.get(Offer, offer_id)
    assert (offer.min_age, offer.capacity, offer.version) == (18, "capacity", 1)
    assert manager.get(url).json["areas"] == ["Brent", "NW10"]
