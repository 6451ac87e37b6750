"""Webhooks API: `POST/GET /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}` (API clients)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.http import idempotent
from service.interop import webhooks as ops

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
               description="Signed callbacks for your organisation's referral status changes "
                           "(a FHIR Task per change)")


class WebhookCreateSchema(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=500),
                     error_messages={"required": "Enter the callback URL",
                                     "invalid": "Enter the callback URL, like "
                                                "https://epr.example.org/stepdown/hooks"},
                     metadata={"description": "https in production; public addresses only"})


class WebhookSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    is_active = fields.Boolean()
    created_at = fields.AwareDateTime()


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "The HMAC-SHA256 signing secret: shown in "
                                                    "this response only"})


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema))


@bp.route("")
class Webhooks(MethodView):
    @requires(perm.REFERRALS_READ)
    @bp.response(200, WebhookListSchema)
    def get(self):
        """This API client's webhooks (never their secrets)."""
        return {"items": ops.list_subscriptions(get_session(), g.principal)}

    @requires(perm.REFERRALS_READ)
    @idempotent
    @bp.arguments(WebhookCreateSchema)
    @bp.response(201, WebhookCreatedSchema)
    def post(self, data):
        """Register a callback. Each delivery is a FHIR Task (application/fhir+json) signed
        with `X-Stepdown-Signature: sha256=<HMAC-SHA256 of the body>`, with
        `X-Stepdown-Timestamp`, `X-Stepdown-Delivery` (deduplicate on it) and
        `X-Stepdown-Event`; non-2xx answers are retried with exponential back-off."""
        return ops.create_subscription(get_session(), g.principal, data["url"])


@bp.route("/<int:webhook_id>")
class WebhookById(MethodView):
    @requires(perm.REFERRALS_READ)
    @bp.response(204)
    def delete(self, webhook_id):
        """Switch the webhook off; deliveries still waiting are dropped."""
        ops.delete_subscription(get_session(), g.principal, webhook_id)


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    api.register_blueprint(bp)
    csrf.exempt(bp)
    ops.register_listener()
