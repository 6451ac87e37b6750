"""Flags API: raise a concern, the duty queue, acknowledge, resolve; and journey step-up."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from service import clock
from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.flags import operations as ops
from service.flags.schemas import (
    AcknowledgeSchema,
    ConcernSchema,
    FlagPageSchema,
    FlagSchema,
    QueueArgsSchema,
    RaisedFlagSchema,
    ResolveSchema,
    StepUpResultSchema,
    StepUpSchema,
)
from service.http import etag_of, idempotent

flags = Blueprint("flags", __name__, url_prefix="/api/v1/flags",
                  description="Specialist statutory pick-up needed (FHIR Flag)")
step_up = Blueprint("flags_step_up", __name__, url_prefix="/api/v1/journeys",
                    description="Step-up: the statutory team takes the person back")


def _flag_response(flag, status: int = 200, events=None, **extra):
    view = ops.flag_view(flag, clock.now(), events if events is not None
                         else ops.flag_events(get_session(), flag.id))
    view.update(extra)
    headers = {"ETag": ops.flag_etag(flag)}
    if status == 201:
        headers["Location"] = f"/api/v1/flags/{flag.id}"
    return view, status, headers


@flags.route("")
class Flags(MethodView):
    @requires(perm.FLAGS_READ)
    @flags.arguments(QueueArgsSchema, location="query")
    @flags.response(200, FlagPageSchema)
    def get(self, args):
        """The duty queue of my team(s): most urgent, then most overdue, first (keyset pages)."""
        items, next_cursor = ops.list_flags(get_session(), g.principal, **args)
        return {"items": items, "next_cursor": next_cursor}

    @requires(perm.FLAGS_RAISE)
    @idempotent
    @flags.arguments(ConcernSchema)
    @flags.response(201, RaisedFlagSchema)
    def post(self, data):
        """Raise a concern about a person referred to you. `emergency` answers with guidance to
        call 999 or the crisis line now: Stepdown is not an emergency channel. The same concern
        on the same referral while a flag is open is added to that flag (200)."""
        flag, retriggered = ops.raise_concern(get_session(), g.principal, data)
        guidance = ops.EMERGENCY_GUIDANCE if data["urgency"] == "emergency" else None
        return _flag_response(flag, 200 if retriggered else 201, retriggered=retriggered,
                              guidance=guidance)


@flags.route("/<int:flag_id>")
class FlagById(MethodView):
    @requires(perm.FLAGS_READ)
    @flags.response(200, FlagSchema)
    def get(self, flag_id):
        """One flag of my team(s) with its history. ETag."""
        flag, events = ops.get_flag(get_session(), g.principal, flag_id)
        return _flag_response(flag, events=events)


@flags.route("/<int:flag_id>/acknowledge")
class FlagAcknowledge(MethodView):
    @requires(perm.FLAGS_WORK)
    @flags.arguments(AcknowledgeSchema)
    @flags.response(200, FlagSchema)
    def post(self, data, flag_id):
        """Acknowledge an open flag routed to my team (stops escalation). If-Match."""
        return _flag_response(ops.acknowledge_flag(get_session(), g.principal, flag_id, data))


@flags.route("/<int:flag_id>/resolve")
class FlagResolve(MethodView):
    @requires(perm.FLAGS_WORK)
    @flags.arguments(ResolveSchema)
    @flags.response(200, FlagSchema)
    def post(self, data, flag_id):
        """Resolve with an outcome; `stepped-up` also steps the journey up (safety net rules).
        If-Match."""
        return _flag_response(ops.resolve_flag(get_session(), g.principal, flag_id, data))


@step_up.route("/<int:journey_id>/step-up")
class JourneyStepUp(MethodView):
    @requires(perm.STEP_UP)
    @step_up.arguments(StepUpSchema)
    @step_up.response(200, StepUpResultSchema)
    def post(self, data, journey_id):
        """Step the person up (from a flag, or directly with a trigger) while the journey is
        active and inside its safety net; after it, 409. If-Match with the journey's ETag."""
        result = ops.step_up(get_session(), g.principal, journey_id, data)
        return result, 200, {"ETag": etag_of("journey", journey_id, result["journey_version"])}


blueprints = [flags, step_up]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
