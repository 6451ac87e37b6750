"""Journeys API: plan a step-down journey, read it with its MDT, record statutory discharge."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.http import IDEMPOTENCY_KEY, IF_MATCH, idempotent
from service.journeys import operations as ops
from service.journeys.schemas import JourneyCreateSchema, JourneyDischargeSchema, JourneySchema

journeys = Blueprint("journeys", __name__, url_prefix="/api/v1/journeys",
                     description="Step-down journeys (FHIR EpisodeOfCare) and their MDT")


def _respond(journey, status: int = 200):
    db = get_session()
    headers = {"ETag": ops.journey_etag(journey)}
    if status == 201:
        headers["Location"] = f"/api/v1/journeys/{journey.id}"
    return ops.journey_view(db, g.principal, journey), status, headers


@journeys.route("")
class Journeys(MethodView):
    @requires(perm.JOURNEYS_WRITE)
    @idempotent
    @journeys.doc(**IDEMPOTENCY_KEY)
    @journeys.arguments(JourneyCreateSchema)
    @journeys.response(201, JourneySchema)
    def post(self, data):
        """Plan a journey owned by the caller's team (Idempotency-Key honoured)."""
        journey = ops.create_journey(get_session(), g.principal, data)
        return _respond(journey, 201)


@journeys.route("/<int:journey_id>")
class JourneyById(MethodView):
    @requires(perm.REFERRALS_READ)
    @journeys.response(200, JourneySchema)
    def get(self, journey_id):
        """The journey, its MDT and its referrals (VCSE callers: their own only). ETag."""
        return _respond(ops.get_journey(get_session(), g.principal, journey_id))


@journeys.route("/<int:journey_id>/discharge")
class JourneyDischarge(MethodView):
    @requires(perm.JOURNEYS_WRITE)
    @journeys.doc(**IF_MATCH)
    @journeys.arguments(JourneyDischargeSchema)
    @journeys.response(200, JourneySchema)
    def post(self, data, journey_id):
        """Record statutory discharge; the safety net ends `safety_net_days` later. If-Match."""
        journey = ops.discharge_journey(get_session(), g.principal, journey_id, data)
        return _respond(journey)


blueprints = [journeys]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
