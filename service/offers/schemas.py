"""Marshmallow schemas for the offers API: the one validation layer at the edge."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.vocab import CAPACITY, OFFER_STATUSES

MAX_ID = 2_147_483_647  # ids are 32-bit integers; a larger one names no record
ID_RANGE = validate.Range(min=1, max=MAX_ID)
AREA_HELP = "A London borough (e.g. Brent) or a postcode district (e.g. NW10)"


class _OfferFieldsSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=4000))
    min_age = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=120))
    max_age = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=120))
    eligibility = fields.String(allow_none=True, validate=validate.Length(max=2000),
                                metadata={"description": "Eligibility in free text"})
    capacity = fields.String(validate=validate.OneOf(CAPACITY))
    waitlist_weeks = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=104))
    response_target_days = fields.Integer(
        validate=validate.Range(min=0, max=60),
        metadata={"description": "Working days to answer a referral"})
    status = fields.String(validate=validate.OneOf(OFFER_STATUSES))
    assured_date = fields.Date(allow_none=True)
    url = fields.Url(allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=500))
    email = fields.Email(allow_none=True, validate=validate.Length(max=320))
    phone = fields.String(allow_none=True, validate=[
        validate.Length(max=40),
        validate.Regexp(r"^[0-9 +()\-]{6,40}$", error="Enter a telephone number")])
    areas = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                        validate=validate.Length(max=100), metadata={"description": AREA_HELP})
    responsibilities = fields.List(fields.String(validate=validate.Length(min=1, max=60)),
                                   validate=validate.Length(max=50),
                                   metadata={"description": "Responsibility codes it covers"})

    @validates_schema
    def _age_range(self, data, **_kw):
        low, high = data.get("min_age"), data.get("max_age")
        if low is not None and high is not None and low > high:
            raise ValidationError("The maximum age must not be below the minimum age", "max_age")


class OfferCreateSchema(_OfferFieldsSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    organisation_id = fields.Integer(
        load_default=None, allow_none=True, validate=ID_RANGE,
        metadata={"description": "Defaults to, and must be, the caller's organisation"})


class OfferPatchSchema(_OfferFieldsSchema):
    pass


class OfferSchema(Schema):
    id = fields.Integer()
    organisation_id = fields.Integer()
    organisation_name = fields.String()
    name = fields.String()
    description = fields.String()
    min_age = fields.Integer(allow_none=True)
    max_age = fields.Integer(allow_none=True)
    eligibility = fields.String(allow_none=True)
    capacity = fields.String()
    waitlist_weeks = fields.Integer(allow_none=True)
    response_target_days = fields.Integer()
    status = fields.String()
    assured_date = fields.Date(allow_none=True)
    url = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    areas = fields.List(fields.String())
    responsibilities = fields.List(fields.String())
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class OfferQuerySchema(Schema):
    area = fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                         metadata={"description": AREA_HELP})
    age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=120))
    need = fields.String(load_default=None, validate=validate.Length(min=1, max=60),
                         metadata={"description": "A responsibility code the offer covers"})
    capacity = fields.String(load_default=None, validate=validate.OneOf(CAPACITY))
    status = fields.String(load_default=None, validate=validate.OneOf(OFFER_STATUSES))
    organisation_id = fields.Integer(load_default=None, validate=ID_RANGE)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.Integer(load_default=None, allow_none=True, validate=ID_RANGE,
                           metadata={"description": "Return offers after this id (keyset)"})


class OfferPageSchema(Schema):
    items = fields.List(fields.Nested(OfferSchema))
    next_after = fields.Integer(allow_none=True)
