"""Marshmallow schemas for the admin API: the one validation layer at the edge."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.vocab import ORGANISATION_KINDS


class OrganisationSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORGANISATION_KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    ods_code = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(r"^[A-Z0-9]{3,10}$",
                                                      error="Enter an ODS code such as RV3"))
    charity_number = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Regexp(r"^[0-9]{6,8}(-[0-9]+)?$"))
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
                           metadata={"description": "Return items after this id (keyset)"})


class OrganisationPageSchema(Schema):
    items = fields.List(fields.Nested(OrganisationSchema))
    next_after = fields.Integer(allow_none=True)
