"""Admin API: organisations, teams, users, memberships, API clients, alliances.

Everything under /organisations/{id}/… is for that organisation's own admin: another
organisation's records answer 404 (and the attempt is audited as denied).
"""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from service.admin import operations as ops
from service.admin.schemas import (
    AlliancePageSchema,
    AllianceSchema,
    ApiClientCreatedSchema,
    ApiClientPageSchema,
    ApiClientSchema,
    Cis2RoleMappingPageSchema,
    Cis2RoleMappingSchema,
    CodePageArgsSchema,
    IdentitySchema,
    MembershipPageSchema,
    MembershipSchema,
    OrganisationPageSchema,
    OrganisationPatchSchema,
    OrganisationSchema,
    PageArgsSchema,
    ResponsibilityMapSchema,
    ResponsibilityPageSchema,
    TeamPageSchema,
    TeamPatchSchema,
    TeamSchema,
    UserCreateSchema,
    UserPageSchema,
    UserSchema,
)
from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.http import IDEMPOTENCY_KEY, IF_MATCH, idempotent

ORGS = "/api/v1/organisations"

organisations = Blueprint("organisations", __name__, url_prefix=ORGS,
                          description="Organisations in the alliance directory")
teams = Blueprint("teams", __name__, url_prefix=ORGS,
                  description="An organisation's teams (its own admin only)")
users = Blueprint("users", __name__, url_prefix=ORGS,
                  description="Users holding a role in an organisation, and their OIDC "
                              "identities (its own admin only)")
memberships = Blueprint("memberships", __name__, url_prefix=ORGS,
                        description="Who holds which role in which team (its own admin only)")
api_clients = Blueprint("api-clients", __name__, url_prefix=ORGS,
                        description="OAuth2 client-credentials clients (its own admin only)")
cis2 = Blueprint("cis2-role-mappings", __name__, url_prefix=ORGS,
                 description="NHS CIS2 national role codes mapped to Stepdown roles "
                             "(statutory organisations' own admin only)")
alliances = Blueprint("alliances", __name__, url_prefix="/api/v1/alliances",
                      description="Alliances, their member organisations and responsibility map")
responsibilities = Blueprint("responsibilities", __name__, url_prefix="/api/v1/responsibilities",
                             description="Coded duties and their scope")


def _tagged(record, etag_of):
    """The record with its ETag header (for If-Match on the next change)."""
    return record, 200, {"ETag": etag_of(record)}


def _page(result):
    items, next_after = result
    return {"items": items, "next_after": next_after}


# ---- Organisations -----------------------------------------------------------------------

@organisations.route("")
class Organisations(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @organisations.arguments(PageArgsSchema, location="query")
    @organisations.response(200, OrganisationPageSchema)
    def get(self, args):
        """List organisations (keyset paginated by id)."""
        return _page(ops.list_organisations(get_session(), g.principal, **args))

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @organisations.doc(**IDEMPOTENCY_KEY)
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
        return _tagged(ops.get_organisation(get_session(), g.principal, organisation_id),
                       ops.organisation_etag)

    @requires(perm.ORGANISATION_ADMIN)
    @organisations.doc(**IF_MATCH)
    @organisations.arguments(OrganisationPatchSchema)
    @organisations.response(200, OrganisationSchema)
    @organisations.alt_response(412, description="The organisation changed since you read it")
    @organisations.alt_response(428, description="If-Match is missing")
    def patch(self, data, organisation_id):
        """Change the organisation's details (If-Match with the ETag you read)."""
        return _tagged(ops.update_organisation(get_session(), g.principal, organisation_id, data),
                       ops.organisation_etag)


# ---- Teams -------------------------------------------------------------------------------

@teams.route("/<int:organisation_id>/teams")
class Teams(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @teams.arguments(PageArgsSchema, location="query")
    @teams.response(200, TeamPageSchema)
    def get(self, args, organisation_id):
        """List the organisation's teams."""
        return _page(ops.list_teams(get_session(), g.principal, organisation_id, **args))

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @teams.doc(**IDEMPOTENCY_KEY)
    @teams.arguments(TeamSchema)
    @teams.response(201, TeamSchema)
    def post(self, data, organisation_id):
        """Add a team."""
        return ops.create_team(get_session(), g.principal, organisation_id, data)


@teams.route("/<int:organisation_id>/teams/<int:team_id>")
class TeamById(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @teams.response(200, TeamSchema)
    def get(self, organisation_id, team_id):
        return _tagged(ops.get_team(get_session(), g.principal, organisation_id, team_id),
                       ops.team_etag)

    @requires(perm.ORGANISATION_ADMIN)
    @teams.doc(**IF_MATCH)
    @teams.arguments(TeamPatchSchema)
    @teams.response(200, TeamSchema)
    @teams.alt_response(412, description="The team changed since you read it")
    @teams.alt_response(428, description="If-Match is missing")
    def patch(self, data, organisation_id, team_id):
        """Rename a team or change its shared inbox (If-Match with the ETag you read)."""
        return _tagged(ops.update_team(get_session(), g.principal, organisation_id, team_id,
                                       data), ops.team_etag)


# ---- Users and identities ----------------------------------------------------------------

@users.route("/<int:organisation_id>/users")
class Users(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @users.arguments(PageArgsSchema, location="query")
    @users.response(200, UserPageSchema)
    def get(self, args, organisation_id):
        """List users holding a role in the organisation, with those roles."""
        return _page(ops.list_users(get_session(), g.principal, organisation_id, **args))

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @users.doc(**IDEMPOTENCY_KEY)
    @users.arguments(UserCreateSchema)
    @users.response(201, UserSchema)
    def post(self, data, organisation_id):
        """Create a local user with a first role in the organisation."""
        return ops.create_user(get_session(), g.principal, organisation_id, data)


@users.route("/<int:organisation_id>/users/<int:user_id>")
class UserById(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @users.response(200, UserSchema)
    def get(self, organisation_id, user_id):
        return ops.get_user(get_session(), g.principal, organisation_id, user_id)


@users.route("/<int:organisation_id>/users/<int:user_id>/identities")
class Identities(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @users.response(200, IdentitySchema(many=True))
    def get(self, organisation_id, user_id):
        """The OIDC identities registered for the user."""
        return ops.list_identities(get_session(), g.principal, organisation_id, user_id)

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @users.doc(**IDEMPOTENCY_KEY)
    @users.arguments(IdentitySchema)
    @users.response(201, IdentitySchema)
    def post(self, data, organisation_id, user_id):
        """Register who may sign in as this user through OIDC (issuer and subject)."""
        return ops.create_identity(get_session(), g.principal, organisation_id, user_id, data)


# ---- Memberships -------------------------------------------------------------------------

@memberships.route("/<int:organisation_id>/memberships")
class Memberships(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @memberships.arguments(PageArgsSchema, location="query")
    @memberships.response(200, MembershipPageSchema)
    def get(self, args, organisation_id):
        return _page(ops.list_memberships(get_session(), g.principal, organisation_id, **args))

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @memberships.doc(**IDEMPOTENCY_KEY)
    @memberships.arguments(MembershipSchema)
    @memberships.response(201, MembershipSchema)
    def post(self, data, organisation_id):
        """Give a user of the organisation another role (valid for the organisation's kind)."""
        return ops.create_membership(get_session(), g.principal, organisation_id, data)


@memberships.route("/<int:organisation_id>/memberships/<int:membership_id>")
class MembershipById(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @memberships.response(200, MembershipSchema)
    def get(self, organisation_id, membership_id):
        return ops.get_membership(get_session(), g.principal, organisation_id, membership_id)

    @requires(perm.ORGANISATION_ADMIN)
    @memberships.response(204)
    def delete(self, organisation_id, membership_id):
        """Remove a role; sessions acting in it end."""
        ops.delete_membership(get_session(), g.principal, organisation_id, membership_id)


# ---- API clients -------------------------------------------------------------------------

@api_clients.route("/<int:organisation_id>/api-clients")
class ApiClients(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @api_clients.arguments(PageArgsSchema, location="query")
    @api_clients.response(200, ApiClientPageSchema)
    def get(self, args, organisation_id):
        return _page(ops.list_api_clients(get_session(), g.principal, organisation_id, **args))

    @requires(perm.ORGANISATION_ADMIN)
    @api_clients.arguments(ApiClientSchema)
    @api_clients.response(201, ApiClientCreatedSchema)
    def post(self, data, organisation_id):
        """Create a client. The secret is in this response only; it is stored hashed.

        No Idempotency-Key here: a replay would have to keep the secret in clear text."""
        return ops.create_api_client(get_session(), g.principal, organisation_id, data)


@api_clients.route("/<int:organisation_id>/api-clients/<int:client_id>")
class ApiClientById(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @api_clients.response(200, ApiClientSchema)
    def get(self, organisation_id, client_id):
        return ops.get_api_client(get_session(), g.principal, organisation_id, client_id)

    @requires(perm.ORGANISATION_ADMIN)
    @api_clients.response(204)
    def delete(self, organisation_id, client_id):
        """Deactivate the client: it can get no more tokens."""
        ops.deactivate_api_client(get_session(), g.principal, organisation_id, client_id)


# ---- CIS2 role mappings ------------------------------------------------------------------

@cis2.route("/<int:organisation_id>/cis2-role-mappings")
class Cis2RoleMappings(MethodView):
    @requires(perm.ORGANISATION_ADMIN)
    @cis2.arguments(PageArgsSchema, location="query")
    @cis2.response(200, Cis2RoleMappingPageSchema)
    def get(self, args, organisation_id):
        return _page(ops.list_cis2_role_mappings(get_session(), g.principal, organisation_id,
                                                 **args))

    @requires(perm.ORGANISATION_ADMIN)
    @idempotent
    @cis2.doc(**IDEMPOTENCY_KEY)
    @cis2.arguments(Cis2RoleMappingSchema)
    @cis2.response(201, Cis2RoleMappingSchema)
    def post(self, data, organisation_id):
        """Map a CIS2 national role code at the organisation's own ODS code to a role."""
        return ops.create_cis2_role_mapping(get_session(), g.principal, organisation_id, data)


# ---- Alliances and responsibilities ------------------------------------------------------

@alliances.route("")
class Alliances(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @alliances.arguments(PageArgsSchema, location="query")
    @alliances.response(200, AlliancePageSchema)
    def get(self, args):
        """Alliances the caller's organisation belongs to or whose contracts they manage."""
        return _page(ops.list_alliances(get_session(), g.principal, **args))


@alliances.route("/<int:alliance_id>")
class AllianceById(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @alliances.response(200, AllianceSchema)
    def get(self, alliance_id):
        """An alliance with its member organisations."""
        return ops.get_alliance(get_session(), g.principal, alliance_id)


@alliances.route("/<int:alliance_id>/responsibility-map")
class ResponsibilityMap(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @alliances.response(200, ResponsibilityMapSchema)
    def get(self, alliance_id):
        """Responsibilities x member organisations: whether each holds it, and its scope."""
        return ops.responsibility_map(get_session(), g.principal, alliance_id)


@responsibilities.route("")
class Responsibilities(MethodView):
    @requires(perm.ORGANISATIONS_READ)
    @responsibilities.arguments(CodePageArgsSchema, location="query")
    @responsibilities.response(200, ResponsibilityPageSchema)
    def get(self, args):
        """Every responsibility with its scope (keyset paginated by code)."""
        return _page(ops.list_responsibilities(get_session(), g.principal, **args))


blueprints = [organisations, teams, users, memberships, api_clients, cis2, alliances,
              responsibilities]


def register(app, api) -> None:
    from service import csrf
    from service.admin import views

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    views.register(app)  # the org admin pages (CSRF-protected forms)
