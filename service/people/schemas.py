"""Marshmallow schemas for people and consents: the one validation layer at the edge.

Error messages never repeat the value sent: an NHS number is personal data.
"""

from __future__ import annotations

import re
from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.nhs_number import InvalidNHSNumber, normalise_nhs_number
from models.vocab import (
    ART6_BASES,
    ART9_CONDITIONS,
    CONSENT_METHODS,
    ETHNIC_CATEGORIES,
    SEX_CODES,
)

_POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
MAX_ID = 2_147_483_647  # ids are 32-bit integers; a larger one names no record
ID_RANGE = validate.Range(min=1, max=MAX_ID)


class NHSNumber(fields.String):
    """Ten digits (spaces or dashes allowed) passing the Modulus 11 check; loads normalised."""

    default_error_messages = {
        "invalid_nhs_number": "Enter a valid NHS number: 10 digits with a correct check digit",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_nhs_number(text)
        except InvalidNHSNumber:
            raise self.make_error("invalid_nhs_number") from None


class PostcodeDistrict(fields.String):
    """The outward part of a postcode, e.g. NW10 (never the full postcode)."""

    default_error_messages = {
        "invalid_district": "Enter the postcode district only, for example NW10",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not _POSTCODE_DISTRICT.match(text):
            raise self.make_error("invalid_district")
        return text


def _text(max_length: int, **kwargs):
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


class AboutMeSchema(Schema):
    """In the person's own words: what's strong rather than what's wrong."""

    strengths = _text(4000, allow_none=True)
    what_matters = _text(4000, allow_none=True)
    what_helps = _text(4000, allow_none=True)
    updated_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    updated_by = fields.String(dump_only=True, allow_none=True,
                               metadata={"description": "Name of the staff member who recorded it"})


_NAME = {"validate": validate.Length(min=1, max=100)}


class PersonCreateSchema(Schema):
    nhs_number = NHSNumber(required=True)
    given_name = fields.String(required=True, **_NAME)
    family_name = fields.String(required=True, **_NAME)
    preferred_name = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(max=100))
    pronouns = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    date_of_birth = fields.Date(required=True)
    postcode_district = PostcodeDistrict(load_default=None, allow_none=True)
    borough = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    communication_needs = fields.String(load_default=None, allow_none=True,
                                        validate=validate.Length(max=2000))
    sex = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(SEX_CODES))
    ethnic_category = fields.String(load_default=None, allow_none=True,
                                    validate=validate.OneOf(ETHNIC_CATEGORIES))
    about_me = fields.Nested(AboutMeSchema, load_default=None, allow_none=True)
    needs = fields.List(fields.String(validate=validate.Length(min=1, max=60)),
                        load_default=list, validate=validate.Length(max=50),
                        metadata={"description": "Responsibility codes of the person's needs"})


class PersonPatchSchema(Schema):
    """About me needs people:about-me (care coordinators, peer workers); the rest people:write."""

    nhs_number = NHSNumber()
    given_name = fields.String(**_NAME)
    family_name = fields.String(**_NAME)
    preferred_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    pronouns = fields.String(allow_none=True, validate=validate.Length(max=50))
    date_of_birth = fields.Date()
    postcode_district = PostcodeDistrict(allow_none=True)
    borough = fields.String(allow_none=True, validate=validate.Length(max=100))
    communication_needs = fields.String(allow_none=True, validate=validate.Length(max=2000))
    sex = fields.String(allow_none=True, validate=validate.OneOf(SEX_CODES))
    ethnic_category = fields.String(allow_none=True, validate=validate.OneOf(ETHNIC_CATEGORIES))
    about_me = fields.Nested(AboutMeSchema)
    needs = fields.List(fields.String(validate=validate.Length(min=1, max=60)),
                        validate=validate.Length(max=50))


class PersonSchema(Schema):
    """A person, shaped per caller: VCSE callers get the minimum necessary (no NHS number,
    date of birth, borough, equality fields or needs); statutory callers get every field."""

    id = fields.Integer()
    nhs_number = fields.String(metadata={"description": "Statutory callers only"})
    given_name = fields.String()
    family_name = fields.String()
    preferred_name = fields.String(allow_none=True)
    pronouns = fields.String(allow_none=True)
    date_of_birth = fields.Date(metadata={"description": "Statutory callers only"})
    postcode_district = fields.String(allow_none=True)
    borough = fields.String(allow_none=True)
    communication_needs = fields.String(allow_none=True)
    sex = fields.String(allow_none=True)
    ethnic_category = fields.String(allow_none=True)
    about_me = fields.Nested(AboutMeSchema)
    needs = fields.List(fields.String())
    created_by_organisation_id = fields.Integer(allow_none=True)
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class PersonSearchSchema(Schema):
    nhs_number = NHSNumber(required=True)


class PersonSearchResultSchema(Schema):
    items = fields.List(fields.Nested(PersonSchema))


# --- consents ------------------------------------------------------------------------------

class ConsentCreateSchema(Schema):
    organisation_id = fields.Integer(required=True, validate=ID_RANGE,
                                     metadata={"description": "The organisation the consent names"})
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=500))
    lawful_basis = fields.String(required=True, validate=validate.OneOf(ART6_BASES),
                                 metadata={"description": "UK GDPR article 6 basis"})
    condition = fields.String(required=True, validate=validate.OneOf(ART9_CONDITIONS),
                              metadata={"description": "UK GDPR article 9 condition"})
    method = fields.String(required=True, validate=validate.OneOf(CONSENT_METHODS))
    given_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)

    @validates_schema
    def _dates(self, data, **_kw):
        given, expires = data.get("given_at"), data.get("expires_at")
        if given is not None and expires is not None and expires <= given:
            raise ValidationError("The expiry must be after the date consent was given",
                                  "expires_at")


class ConsentWithdrawSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ConsentSchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    organisation_id = fields.Integer()
    organisation_name = fields.String()
    purpose = fields.String()
    lawful_basis = fields.String()
    condition = fields.String()
    method = fields.String()
    status = fields.String(metadata={"description": "active, withdrawn or expired"})
    recorded_by_user_id = fields.Integer(allow_none=True)
    recorded_by = fields.String(allow_none=True)
    given_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)
    withdrawn_at = fields.AwareDateTime(allow_none=True)
    withdrawn_by_user_id = fields.Integer(allow_none=True)
    withdrawal_reason = fields.String(allow_none=True)
    cancelled_referral_ids = fields.List(fields.Integer(),
                                         metadata={"description": "On withdrawal: the open "
                                                   "referrals it cancelled"})
    created_at = fields.AwareDateTime()


class ConsentPageArgsSchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    after = fields.Integer(load_default=None, allow_none=True, validate=ID_RANGE,
                           metadata={"description": "Return items after this id (keyset)"})


class ConsentPageSchema(Schema):
    items = fields.List(fields.Nested(ConsentSchema))
    next_after = fields.Integer(allow_none=True)
