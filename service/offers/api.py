"""Offers API: the directory of community offers (not personal data)."""

from __future__ import annotations

from flask import g, request
from flask.views import MethodView

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import NotFound
from service.http import etag_of
from service.offers import operations as ops
from service.offers.schemas import (
    MAX_ID,
    OfferCreateSchema,
    OfferPageSchema,
    OfferPatchSchema,
    OfferQuerySchema,
    OfferSchema,
)

offers = Blueprint("offers", __name__, url_prefix="/api/v1/offers",
                   description="Community offers run by VCSE organisations")


@offers.before_request
def _ids_in_range():
    """A path id beyond the 32-bit key range names no offer: 404, not a database error."""
    offer_id = (request.view_args or {}).get("offer_id")
    if offer_id is not None and not 0 < offer_id <= MAX_ID:
        raise NotFound("No such offer.")


def _with_etag(offer: dict, status: int = 200):
    headers = {"ETag": etag_of("offer", offer["id"], offer["version"])}
    if status == 201:
        headers["Location"] = f"/api/v1/offers/{offer['id']}"
    return offer, status, headers


@offers.route("")
class Offers(MethodView):
    @requires(perm.OFFERS_READ)
    @offers.arguments(OfferQuerySchema, location="query")
    @offers.response(200, OfferPageSchema)
    def get(self, args):
        """List offers, filtered by area (borough or postcode district), age, need
        (responsibility code), capacity and status; keyset paginated by id."""
        items, next_after = ops.list_offers(get_session(), g.principal, **args)
        return {"items": items, "next_after": next_after}

    @requires(perm.OFFERS_MANAGE)
    @offers.arguments(OfferCreateSchema)
    @offers.response(201, OfferSchema)
    def post(self, data):
        """Add an offer run by the caller's VCSE organisation."""
        return _with_etag(ops.create_offer(get_session(), g.principal, data), 201)


@offers.route("/<int:offer_id>")
class OfferById(MethodView):
    @requires(perm.OFFERS_READ)
    @offers.response(200, OfferSchema)
    def get(self, offer_id):
        """One offer, with its ETag."""
        return _with_etag(ops.get_offer(get_session(), g.principal, offer_id))

    @requires(perm.OFFERS_MANAGE)
    @offers.doc(parameters=[{"in": "header", "name": "If-Match", "required": True,
                             "schema": {"type": "string"},
                             "description": "The ETag of the version you read"}])
    @offers.arguments(OfferPatchSchema)
    @offers.response(200, OfferSchema)
    def patch(self, data, offer_id):
        """Change capacity, status, eligibility, areas, responsibilities… (needs If-Match)."""
        return _with_etag(ops.update_offer(get_session(), g.principal, offer_id, data))


blueprints = [offers]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
