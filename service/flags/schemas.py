"""Marshmallow schemas for flags and step-up: the one validation layer at the edge."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.vocab import CONCERN_CATEGORIES, FLAG_OUTCOMES, FLAG_STATES, FLAG_TRIGGERS, URGENCIES

QUEUE_STATUSES = (*FLAG_STATES, "active")  # active: open or acknowledged (FHIR Flag `active`)
# Ids are 32-bit keys: a larger one names no record and is refused here, not sent to the database.
ID_RANGE = validate.Range(min=1, max=2**31 - 1)
STEP_UP_NOTE_MAX = 2000  # journey.step_up_note


class ConcernSchema(Schema):
    """A VCSE or peer worker raises a concern about a person referred to them."""

    referral_id = fields.Integer(load_default=None, allow_none=True, strict=True,
                                 validate=ID_RANGE,
                                 metadata={"description": "The referral to the caller's "
                                                          "organisation (required for VCSE)"})
    journey_id = fields.Integer(load_default=None, allow_none=True, strict=True,
                                validate=ID_RANGE,
                                metadata={"description": "Statutory peer workers may name the "
                                                         "journey instead of a referral"})
    category = fields.String(required=True, validate=validate.OneOf(CONCERN_CATEGORIES))
    urgency = fields.String(required=True, validate=validate.OneOf(URGENCIES))
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=4000),
                                metadata={"description": "What you noticed (kept in the record, "
                                                         "never emailed)"})

    @validates_schema
    def _subject(self, data, **_kw):
        if data.get("referral_id") is None and data.get("journey_id") is None:
            raise ValidationError("Name the referral the concern is about", "referral_id")


class QueueArgsSchema(Schema):
    status = fields.String(load_default="active", validate=validate.OneOf(QUEUE_STATUSES),
                           metadata={"description": "open | acknowledged | resolved | active "
                                                    "(open or acknowledged; the default)"})
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100),
                           metadata={"description": "next_cursor of the previous page"})


class AcknowledgeSchema(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class ResolveSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(FLAG_OUTCOMES))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000),
                         metadata={"description": "With outcome stepped-up: at most "
                                                  f"{STEP_UP_NOTE_MAX} characters (it is also "
                                                  "the journey's step-up note)"})
    hold_open_referrals = fields.Boolean(
        load_default=False,
        metadata={"description": "With outcome stepped-up: hold in-progress VCSE referrals"})

    @validates_schema
    def _step_up_note(self, data, **_kw):
        # Resolving stepped-up steps the journey up with this note (journey.step_up_note).
        if data.get("outcome") == "stepped-up" and len(data.get("note") or "") > STEP_UP_NOTE_MAX:
            raise ValidationError(f"A step-up note must be {STEP_UP_NOTE_MAX} characters or "
                                  "fewer", "note")


class FlagEventSchema(Schema):
    kind = fields.String()
    at = fields.DateTime()
    actor_user_id = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)


class FlagSummarySchema(Schema):
    id = fields.Integer()
    person_id = fields.Integer()
    journey_id = fields.Integer()
    referral_id = fields.Integer(allow_none=True)
    trigger = fields.String(metadata={"description": " | ".join(FLAG_TRIGGERS)})
    category = fields.String(allow_none=True)
    urgency = fields.String()
    status = fields.String()
    description = fields.String(allow_none=True)
    routed_team_id = fields.Integer()
    also_routed_team_id = fields.Integer(allow_none=True)
    raised_by_user_id = fields.Integer(allow_none=True)
    raised_by_organisation_id = fields.Integer(allow_none=True)
    raised_at = fields.DateTime()
    acknowledgement_due = fields.DateTime()
    overdue = fields.Boolean()
    acknowledged_at = fields.DateTime(allow_none=True)
    acknowledged_by_user_id = fields.Integer(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by_user_id = fields.Integer(allow_none=True)
    outcome = fields.String(allow_none=True)
    resolution_note = fields.String(allow_none=True)
    version = fields.Integer()


class FlagSchema(FlagSummarySchema):
    events = fields.List(fields.Nested(FlagEventSchema))


class GuidanceSchema(Schema):
    level = fields.String()
    message = fields.String()


class RaisedFlagSchema(FlagSchema):
    retriggered = fields.Boolean(metadata={"description": "True when the concern was added to "
                                                          "an open flag instead of a new one"})
    guidance = fields.Nested(GuidanceSchema, allow_none=True,
                             metadata={"description": "Shown prominently for emergencies"})


class FlagPageSchema(Schema):
    items = fields.List(fields.Nested(FlagSummarySchema))
    next_cursor = fields.String(allow_none=True)


class StepUpSchema(Schema):
    flag_id = fields.Integer(load_default=None, allow_none=True, strict=True,
                             validate=ID_RANGE,
                             metadata={"description": "The flag this step-up answers; it is "
                                                      "resolved `stepped-up`"})
    trigger = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=60),
                            metadata={"description": "Why, when not from a flag"})
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=STEP_UP_NOTE_MAX))
    hold_open_referrals = fields.Boolean(
        load_default=False,
        metadata={"description": "Put in-progress VCSE referrals on hold (reason stepped-up); "
                                 "otherwise they continue alongside"})

    @validates_schema
    def _why(self, data, **_kw):
        if data.get("flag_id") is None and not (data.get("trigger") or "").strip():
            raise ValidationError("Give the flag or the trigger for the step-up", "trigger")


class StepUpResultSchema(Schema):
    journey_id = fields.Integer()
    journey_version = fields.Integer()
    status = fields.String()
    stepped_up_at = fields.DateTime()
    step_up_trigger = fields.String()
    step_up_flag_id = fields.Integer(allow_none=True)
    safety_net_ends = fields.Date(allow_none=True)
    held_referral_ids = fields.List(fields.Integer())
    continuing_referral_ids = fields.List(fields.Integer())
