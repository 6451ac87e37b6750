"""Audit API: `GET /audit?person=…` — who has seen or changed this person's record."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from service.api_blueprint import Blueprint
from service.audit.subject_access import person_audit_trail
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session

MAX_ID = 2_147_483_647  # person ids are 32-bit integers

audit = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                  description="The audit trail of a person's record (subject access requests)")


class AuditQuerySchema(Schema):
    person = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID),
                            metadata={"description": "The person's id"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.Integer(load_default=None, allow_none=True,
                           validate=validate.Range(min=1, max=2**63 - 1),
                           metadata={"description": "Return events older than this id (keyset)"})


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    actor_user_name = fields.String(allow_none=True)
    actor_client_name = fields.String(allow_none=True)
    actor_role = fields.String(allow_none=True)
    actor_organisation = fields.String(allow_none=True)
    action = fields.String()
    record_type = fields.String()
    record_id = fields.String(allow_none=True)
    outcome = fields.String(metadata={"description": "allowed or denied"})


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema))
    next_after = fields.Integer(allow_none=True)


@audit.route("")
class PersonAudit(MethodView):
    @requires(perm.AUDIT_READ)
    @audit.arguments(AuditQuerySchema, location="query")
    @audit.response(200, AuditPageSchema)
    def get(self, args):
        """Who has seen or changed this person's record, newest first."""
        items, next_after = person_audit_trail(get_session(), g.principal, args["person"],
                                               limit=args["limit"], after=args["after"])
        return {"items": items, "next_after": next_after}


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    api.register_blueprint(audit)
    csrf.exempt(audit)
