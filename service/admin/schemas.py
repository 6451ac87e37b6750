"""Marshmallow schemas for the admin API and pages: the one validation layer at the edge.

Messages are written for people (they are shown next to form fields), never echo input,
and unknown fields are refused (marshmallow's default RAISE) with a message per field.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.vocab import ORGANISATION_KINDS, RESPONSIBILITY_SCOPES, ROLES
from service.auth.permissions import SCOPES


def _required(message: str) -> dict:
    return {"required": message, "null": message}


class OrganisationSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    ods_code = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(r"^[A-Z0-9]{3,10}$",
                                                      error="Enter an ODS code such as RV3"))
    charity_number = fields.String(load_default=None, allow_none=True,
                                   validate=[validate.Length(max=20),
                                             validate.Regexp(r"^[0-9]{6,8}(-[0-9]+)?$")])
    company_number = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Regexp(r"^[A-Z0-9]{8}$"))
    borough = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))

    @validates_schema
    def _identifier(self, data, **_kw):
        if data.get("kind") == "statutory" and not data.get("ods_code"):
            raise ValidationError("A statutory organisation needs its ODS code", "ods_code")
        if data.get("kind") == "vcse" and not (data.get("charity_number")
                                               or data.get("company_number")):
            raise ValidationError("A VCSE organisation needs a charity or company number",
                                  "charity_number")


class OrganisationPatchSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    borough = fields.String(allow_none=True, validate=validate.Length(max=100))


class PageArgsSchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.Integer(load_default=None, allow_none=True,
                           validate=validate.Range(min=0, max=2**31 - 1),
                           metadata={"description": "Return items after this id (keyset)"})


class CodePageArgsSchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60),
                          metadata={"description": "Return items after this code (keyset)"})


def page_of(item_schema: type[Schema], name: str, key=fields.Integer) -> type[Schema]:
    """A page of items: {"items": [...], "next_after": <key of the last item or null>}."""
    return Schema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "next_after": key(allow_none=True)},
        name=name,
    )


OrganisationPageSchema = page_of(OrganisationSchema, "OrganisationPage")


# ---- Teams -------------------------------------------------------------------------------

class TeamSchema(Schema):
    id = fields.Integer(dump_only=True)
    organisation_id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200,
                                                                 error="Enter a team name of "
                                                                       "200 characters or fewer"),
                         error_messages=_required("Enter a team name"))
    email = fields.Email(load_default=None, allow_none=True,
                         validate=validate.Length(max=320),
                         error_messages={"invalid": "Enter an email address in the correct "
                                                    "format, like team@example.org"},
                         metadata={"description": "The team's shared inbox"})
    created_at = fields.AwareDateTime(dump_only=True)


class TeamPatchSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200,
                                                  error="Enter a team name of 200 characters "
                                                        "or fewer"),
                         error_messages=_required("Enter a team name"))
    email = fields.Email(allow_none=True, validate=validate.Length(max=320),
                         error_messages={"invalid": "Enter an email address in the correct "
                                                    "format, like team@example.org"})


TeamPageSchema = page_of(TeamSchema, "TeamPage")


# ---- Memberships -------------------------------------------------------------------------

_ROLE_FIELD = dict(
    required=True,
    validate=validate.OneOf(ROLES, error="Choose a role"),
    error_messages=_required("Choose a role"),
)


class MembershipSchema(Schema):
    id = fields.Integer(dump_only=True)
    user_id = fields.Integer(required=True,
                             error_messages={**_required("Choose a user"),
                                             "invalid": "Choose a user"})
    organisation_id = fields.Integer(dump_only=True)
    team_id = fields.Integer(load_default=None, allow_none=True,
                             error_messages={"invalid": "Choose a team"})
    role = fields.String(**_ROLE_FIELD)
    is_team_manager = fields.Boolean(load_default=False,
                                     metadata={"description": "Receives escalations"})
    created_at = fields.AwareDateTime(dump_only=True)


MembershipPageSchema = page_of(MembershipSchema, "MembershipPage")


class UserMembershipSchema(Schema):
    """A membership as shown inside a user (the organisation is the one in the URL)."""

    id = fields.Integer()
    role = fields.String()
    team_id = fields.Integer(allow_none=True)
    is_team_manager = fields.Boolean()


# ---- Users and OIDC identities -----------------------------------------------------------

class IdentitySchema(Schema):
    id = fields.Integer(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    issuer = fields.String(required=True,
                           validate=[validate.Length(max=500),
                                     validate.URL(schemes={"https", "http"}, require_tld=False,
                                                  error="Enter the issuer URL, like "
                                                        "https://login.example.org")],
                           error_messages=_required("Enter the issuer URL"),
                           metadata={"description": "The OIDC issuer (iss), as the provider "
                                                    "publishes it"})
    subject = fields.String(required=True,
                            validate=validate.Length(min=1, max=255,
                                                     error="Enter the subject identifier of "
                                                           "255 characters or fewer"),
                            error_messages=_required("Enter the subject identifier"),
                            metadata={"description": "The user's subject (sub) at that issuer"})
    created_at = fields.AwareDateTime(dump_only=True)


class UserSchema(Schema):
    """A user as an admin sees it: never the password hash, only whether one is set."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    has_password = fields.Boolean(dump_only=True)
    memberships = fields.List(fields.Nested(UserMembershipSchema), dump_only=True,
                              metadata={"description": "Roles held in this organisation"})
    identities = fields.List(fields.Nested(IdentitySchema), dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)


UserPageSchema = page_of(UserSchema, "UserPage")


class UserCreateSchema(Schema):
    """A local user with an initial membership in the admin's organisation."""

    display_name = fields.String(required=True,
                                 validate=validate.Length(min=1, max=200,
                                                          error="Enter a name of 200 "
                                                                "characters or fewer"),
                                 error_messages=_required("Enter the person's full name"))
    email = fields.Email(required=True, validate=validate.Length(max=320),
                         error_messages={**_required("Enter an email address"),
                                         "invalid": "Enter an email address in the correct "
                                                    "format, like name@example.org"})
    password = fields.String(load_default=None, allow_none=True, load_only=True,
                             validate=validate.Length(min=12, max=200,
                                                      error="Enter a password of at least 12 "
                                                            "characters"),
                             metadata={"description": "Leave out for a user who signs in "
                                                      "only through OIDC"})
    role = fields.String(**_ROLE_FIELD)
    team_id = fields.Integer(load_default=None, allow_none=True,
                             error_messages={"invalid": "Choose a team"})
    is_team_manager = fields.Boolean(load_default=False)


# ---- API clients -------------------------------------------------------------------------

class ApiClientSchema(Schema):
    id = fields.Integer(dump_only=True)
    client_id = fields.String(dump_only=True)
    organisation_id = fields.Integer(dump_only=True)
    name = fields.String(required=True,
                         validate=validate.Length(min=1, max=200,
                                                  error="Enter a name of 200 characters or fewer"),
                         error_messages=_required("Enter a name for the client"))
    team_id = fields.Integer(load_default=None, allow_none=True,
                             error_messages={"invalid": "Choose a team"},
                             metadata={"description": "The team the client acts for"})
    scopes = fields.List(
        fields.String(validate=validate.OneOf(SCOPES, error="Choose scopes from the list")),
        required=True, validate=validate.Length(min=1, error="Choose at least one scope"),
        error_messages=_required("Choose at least one scope"),
    )
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)


class ApiClientCreatedSchema(ApiClientSchema):
    client_secret = fields.String(dump_only=True,
                                  metadata={"description": "Shown once, in this response only"})


ApiClientPageSchema = page_of(ApiClientSchema, "ApiClientPage")


# ---- CIS2 role mappings ------------------------------------------------------------------

class Cis2RoleMappingSchema(Schema):
    id = fields.Integer(dump_only=True)
    organisation_id = fields.Integer(dump_only=True)
    ods_code = fields.String(required=True,
                             validate=validate.Regexp(r"^[A-Z0-9]{3,10}$",
                                                      error="Enter an ODS code such as RV3"),
                             error_messages=_required("Enter the organisation's ODS code"))
    role_code = fields.String(required=True,
                              validate=validate.Regexp(r"^[A-Za-z0-9:._-]{1,30}$",
                                                       error="Enter a national RBAC role code "
                                                             "such as R8000"),
                              error_messages=_required("Enter a national RBAC role code"))
    team_id = fields.Integer(load_default=None, allow_none=True,
                             error_messages={"invalid": "Choose a team"})
    role = fields.String(**_ROLE_FIELD)


Cis2RoleMappingPageSchema = page_of(Cis2RoleMappingSchema, "Cis2RoleMappingPage")


# ---- Alliances and responsibilities ------------------------------------------------------

class ResponsibilitySchema(Schema):
    code = fields.String()
    name = fields.String()
    scope = fields.String(metadata={"enum": list(RESPONSIBILITY_SCOPES)})
    description = fields.String(allow_none=True)


ResponsibilityPageSchema = page_of(ResponsibilitySchema, "ResponsibilityPage", key=fields.String)


class MemberOrganisationSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()


class AllianceSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    organisations = fields.List(fields.Nested(MemberOrganisationSchema))


class AllianceSummarySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)


AlliancePageSchema = page_of(AllianceSummarySchema, "AlliancePage")


class MapCellSchema(Schema):
    organisation_id = fields.Integer()
    holds = fields.Boolean()


class MapRowSchema(Schema):
    code = fields.String()
    name = fields.String()
    scope = fields.String()
    cells = fields.List(fields.Nested(MapCellSchema),
                        metadata={"description": "One cell per organisation, in the order of "
                                                 "`organisations`"})


class ResponsibilityMapSchema(Schema):
    alliance = fields.Nested(AllianceSummarySchema)
    organisations = fields.List(fields.Nested(MemberOrganisationSchema))
    responsibilities = fields.List(fields.Nested(MapRowSchema))
