"""GET /openreferral/services[/{id}]: the Open Referral UK 3.0 directory feed."""

from __future__ import annotations

import importlib.util

import pytest

from service.interop.oruk import offer_id_from, service_uuid
from tests.oruk_support import assert_valid_page, schema_errors, varied_offers

ACTIVE = 5  # varied_offers: five active offers, three in other statuses


@pytest.fixture
def offers(db, demo):
    return varied_offers(db, demo)


def test_list_is_public_paginated_and_valid(client, offers):
    response = client.get("/openreferral/services?per_page=2")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert_valid_page(body)
    assert body["total_items"] == ACTIVE
    assert body["total_pages"] == 3
    assert (body["page_number"], body["size"], body["first_page"], body["last_page"],
            body["empty"]) == (1, 2, True, False, False)

    seen = []
    for page in (1, 2, 3):
        body = client.get(f"/openreferral/services?page={page}&per_page=2").get_json()
        assert_valid_page(body)
        seen += [item["name"] for item in body["contents"]]
    assert body["last_page"] is True and body["size"] == 1
    assert seen == sorted(seen) and len(set(seen)) == ACTIVE
    assert not any(name.startswith("Offer ") for name in seen)  # only active offers

    beyond = client.get("/openreferral/services?page=9&per_page=2").get_json()
    assert_valid_page(beyond)
    assert (beyond["empty"], beyond["size"], beyond["last_page"]) == (True, 0, True)


def test_every_published_service_validates_fully_nested(client, offers):
    body = client.get("/openreferral/services?per_page=200").get_json()
    for item in body["contents"]:
        response = client.get(f"/openreferral/services/{item['id']}")
        assert response.status_code == 200
        service = response.get_json()
        assert schema_errors("service", service) == [], service["name"]
        assert service["id"] == item["id"]


def test_mapping_of_an_offer(client, offers):
    offer = offers[0]
    service = client.get(f"/openreferral/services/{service_uuid(offer.id)}").get_json()
    assert service["name"] == "Peer mentoring"
    assert service["status"] == "active"
    assert (service["minimum_age"], service["maximum_age"]) == (18, 65)
    assert service["eligibility_description"] == "Adults stepping down from care."
    assert service["assured_date"] == "2026-09-01"
    assert service["url"] == "https://peers.example.org/mentoring"
    assert service["email"] == "referrals@peers.example.org"
    assert "alert" not in service
    assert sorted(a["name"] for a in service["service_areas"]) == ["Brent", "NW10"]
    assert all(a["service_id"] == service["id"] for a in service["service_areas"])
    [contact] = service["contacts"]
    assert contact["phones"][0]["number"] == "020 7946 0001"
    assert sorted(a["taxonomy_term"]["term"] for a in service["attributes"]) == [
        "peer-support", "social-connection"]
    organization = service["organization"]
    assert organization["name"] == "Brent Peer Mentors"
    assert service["organization_id"] == organization["id"]
    [identifier] = organization["organization_identifiers"]
    assert (identifier["identifier_scheme"], identifier["identifier"]) == ("GB-CHC", "1100001")
    # Identifiers are stable between requests.
    again = client.get(f"/openreferral/services/{offer.id}").get_json()
    assert again == service


def test_capacity_is_published_as_an_alert(client, offers):
    alerts = {}
    for offer in offers[1:4]:
        alerts[offer.name] = client.get(f"/openreferral/services/{offer.id}").get_json()["alert"]
    assert "about 6 weeks" in alerts["Allotment group"]
    assert alerts["Waiting list, no estimate"].startswith("Waiting list")
    assert alerts["Employment support"] == "Not taking new referrals at the moment."


def test_company_number_identifier(client, offers):
    service = client.get(f"/openreferral/services/{offers[3].id}").get_json()
    [identifier] = service["organization"]["organization_identifiers"]
    assert (identifier["identifier_scheme"], identifier["identifier"]) == ("GB-COH", "LW123456")


@pytest.mark.parametrize("status", ["inactive", "defunct", "temporarily closed"])
def test_unpublished_offers_are_not_found(client, offers, status):
    offer = next(o for o in offers if o.status == status)
    response = client.get(f"/openreferral/services/{service_uuid(offer.id)}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("ref", ["ac148810-d857-441c-9679-408f346de14b", "999999", "nope",
                                 "5d0ffe12-0000-8000-8000-zzzzzzzzzzzz"])
def test_unknown_services_are_problem_404(client, offers, ref):
    response = client.get(f"/openreferral/services/{ref}")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404


@pytest.mark.parametrize("query", ["page=0", "page=x", "per_page=0", "per_page=1000",
                                   "minimum_age=-1"])
def test_bad_paging_is_a_problem(client, offers, query):
    response = client.get(f"/openreferral/services?{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]


def test_filters(client, offers):
    body = client.get("/openreferral/services?search=MENTOR").get_json()
    assert [s["name"] for s in body["contents"]] == ["Peer mentoring"]
    body = client.get("/openreferral/services?search=100%25").get_json()
    assert body["total_items"] == 0 and body["empty"] is True and body["total_pages"] == 0
    body = client.get("/openreferral/services?minimum_age=17").get_json()
    assert [s["name"] for s in body["contents"]] == ["Peer mentoring"]
    body = client.get("/openreferral/services?maximum_age=70").get_json()
    assert [s["name"] for s in body["contents"]] == ["Peer mentoring"]


def test_unknown_filters_are_ignored(client, offers):
    body = client.get("/openreferral/services?taxonomy_term_id=x&postcode=NW10").get_json()
    assert body["total_items"] == ACTIVE


def test_empty_directory(client, demo):
    body = client.get("/openreferral/services").get_json()
    assert_valid_page(body)
    assert (body["total_items"], body["total_pages"], body["empty"], body["first_page"],
            body["last_page"]) == (0, 0, True, True, True)


def test_service_ids_round_trip():
    for offer_id in (1, 42, 2**40):
        sid = service_uuid(offer_id)
        assert schema_errors("service", {"id": sid, "name": "x", "status": "active"}) == []
        assert offer_id_from(sid) == offer_id
        assert offer_id_from(sid.upper()) == offer_id
    assert offer_id_from("17") == 17
    assert offer_id_from("ac148810-d857-441c-9679-408f346de14b") is None


@pytest.mark.skipif(importlib.util.find_spec("service.people.demo") is None,
                    reason="the demo offers are not there yet")
def test_demo_offers_validate(app, client, db, demo):
    from service.people.demo import OFFERS, load_demo_offers_and_people

    with app.app_context():
        load_demo_offers_and_people(db, demo)
        db.commit()
    body = client.get("/openreferral/services?per_page=200").get_json()
    assert_valid_page(body)
    assert body["total_items"] == sum(1 for row in OFFERS if row[11] == "active")
    for item in body["contents"]:
        service = client.get(f"/openreferral/services/{item['id']}").get_json()
        assert schema_errors("service", service) == [], service["name"]


def test_the_official_example_validates():
    """The validator itself accepts the standard's own example (guards the test helper)."""
    import json

    from tests.oruk_support import ORUK

    example = json.loads((ORUK / "examples" / "service_full.json").read_text())
    assert schema_errors("service", example) == []
    assert schema_errors("service", {**example, "id": "not-a-uuid"})
