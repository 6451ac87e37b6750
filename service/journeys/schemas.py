"""Marshmallow schemas for journeys (FHIR EpisodeOfCare): the one validation layer at the edge."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.vocab import JOURNEY_STATES, MDT_ROLES, REFERRAL_STATES

MAX_ID = 2**31 - 1  # ids are 32-bit keys: larger values are refused, not sent to the database


class JourneyMemberInSchema(Schema):
    user_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    role = fields.String(required=True, validate=validate.OneOf(MDT_ROLES))


class JourneyCreateSchema(Schema):
    person_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    statutory_contact_user_id = fields.Integer(required=True, strict=True,
                                               validate=validate.Range(min=1, max=MAX_ID))
    review_due = fields.Date(required=True, metadata={"description": "Next MDT review"})
    safety_net_days = fields.Integer(load_default=90, strict=True,
                                     validate=validate.Range(min=0, max=365))
    team_id = fields.Integer(load_default=None, allow_none=True, strict=True,
                             validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "Owning team; defaults to the caller's "
                                                      "team (needed by organisation-level clients)"})
    members = fields.List(fields.Nested(JourneyMemberInSchema), load_default=list,
                          validate=validate.Length(max=30))

    @validates_schema
    def _members_once(self, data, **_kw):
        ids = [m["user_id"] for m in data.get("members") or []]
        if len(ids) != len(set(ids)):
            raise ValidationError("Name each MDT member once", "members")


class JourneyDischargeSchema(Schema):
    discharged_on = fields.Date(required=True,
                                metadata={"description": "Statutory discharge date"})
    safety_net_days = fields.Integer(load_default=None, allow_none=True, strict=True,
                                     validate=validate.Range(min=0, max=365),
                                     metadata={"description": "Defaults to the journey's (90)"})


class JourneyUserRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class JourneyMemberSchema(Schema):
    user_id = fields.Integer()
    name = fields.String()
    role = fields.String(metadata={"description": " | ".join(MDT_ROLES)})


class JourneyPersonRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class JourneyTeamRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    organisation_id = fields.Integer()


class JourneyReferralSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": " | ".join(REFERRAL_STATES)})
    offer_id = fields.Integer()
    offer_name = fields.String()
    receiving_organisation_id = fields.Integer()
    receiving_organisation_name = fields.String()
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class JourneySchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": " | ".join(JOURNEY_STATES)})
    person = fields.Nested(JourneyPersonRefSchema)
    team = fields.Nested(JourneyTeamRefSchema)
    statutory_contact = fields.Nested(JourneyUserRefSchema, allow_none=True)
    review_due = fields.Date(allow_none=True)
    discharged_on = fields.Date(allow_none=True)
    safety_net_days = fields.Integer()
    safety_net_ends = fields.Date(allow_none=True)
    stepped_up_at = fields.DateTime(allow_none=True)
    step_up_trigger = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()
    members = fields.List(fields.Nested(JourneyMemberSchema))
    referrals = fields.List(fields.Nested(JourneyReferralSchema))
