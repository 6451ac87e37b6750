"""Offers keep the history of their capacity, for the flows report's days at each capacity."""

from __future__ import annotations

from sqlmodel import select

from models import OfferCapacityChange

OFFER = {"name": "Walk and talk", "description": "Weekly group walks.", "min_age": 18,
         "capacity": "capacity", "response_target_days": 5, "areas": ["Brent"],
         "responsibilities": ["peer-support"]}


def _history(db, offer_id: int) -> list[tuple[str, int | None]]:
    db.expire_all()
    return [(c.capacity, c.waitlist_weeks) for c in db.exec(
        select(OfferCapacityChange).where(OfferCapacityChange.offer_id == offer_id)
        .order_by(OfferCapacityChange.changed_at, OfferCapacityChange.id)).all()]


def _patch(client, offer_id: int, body: dict):
    url = f"/api/v1/offers/{offer_id}"
    response = client.patch(url, json=body, headers={"If-Match": client.get(url).headers["ETag"]})
    assert response.status_code == 200, response.json
    return response


def test_capacity_is_recorded_at_creation_and_on_each_change_only(as_user, db, clock):
    manager = as_user("vcse-manager")
    offer_id = manager.post("/api/v1/offers", json=OFFER).json["id"]
    assert _history(db, offer_id) == [("capacity", None)]
    clock.advance(days=3)
    manager = as_user("vcse-manager")
    _patch(manager, offer_id, {"description": "Fortnightly group walks."})
    assert _history(db, offer_id) == [("capacity", None)]  # not a capacity change
    _patch(manager, offer_id, {"capacity": "waitlist", "waitlist_weeks": 4})
    _patch(manager, offer_id, {"waitlist_weeks": 8})
    _patch(manager, offer_id, {"capacity": "no-capacity", "waitlist_weeks": None})
    assert _history(db, offer_id) == [("capacity", None), ("waitlist", 4), ("waitlist", 8),
                                      ("no-capacity", None)]
    changes = db.exec(select(OfferCapacityChange.changed_at)
                      .where(OfferCapacityChange.offer_id == offer_id)
                      .order_by(OfferCapacityChange.id)).all()
    assert changes[1] == clock.now()
