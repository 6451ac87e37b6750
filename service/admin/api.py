"""Admin API: organisations, teams, users, memberships, API clients, alliances."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from service.admin import operations as ops
from service.admin.schemas import (
    OrganisationPageSchema,
    OrganisationPatchSchema,
    OrganisationSchema,
    PageArgsSchema,
)
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session

organisations = Blueprint("organisations", __name__, url_prefix="/api/v1/organisations",
                          description="Organisations in the alliance directory")


@organisations.route("")
class Organisations(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @organisations.arguments(PageArgsSchema, location="query")
    @organisations.response(200, OrganisationPageSchema)
    def get(self, args):
        """List organisations (keyset paginated by id)."""
        items, next_after = ops.list_organisations(get_session(), g.principal, **args)
        return {"items": items, "next_after": next_after}

    @requires(perm.ORGANISATION_ADMIN)
    @organisations.arguments(OrganisationSchema)
    @organisations.response(201, OrganisationSchema)
    def post(self, data):
        """Register an organisation."""
        return ops.create_organisation(get_session(), g.principal, data)


@organisations.route("/<int:organisation_id>")
class OrganisationById(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @organisations.response(200, OrganisationSchema)
    def get(self, organisation_id):
        return ops.get_organisation(get_session(), g.principal, organisation_id)

    @requires(perm.ORGANISATION_ADMIN)
    @organisations.arguments(OrganisationPatchSchema)
    @organisations.response(200, OrganisationSchema)
    def patch(self, data, organisation_id):
        return ops.update_organisation(get_session(), g.principal, organisation_id, data)


blueprints = [organisations]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
