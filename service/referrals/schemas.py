"""Marshmallow schemas for referrals, their contacts and notes: the one validation layer."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.referral_lifecycle import ACTIONS, REASONS_FOR
from models.vocab import (
    ALTERNATIVE_BASES,
    CONTACT_OUTCOMES,
    NOTE_KINDS,
    REFERRAL_STATES,
)

_ASSIGNEE = r"^([1-9][0-9]{0,8}|me|none)$"  # a user id (32-bit key), me or none
MAX_ID = 2**31 - 1  # ids are 32-bit keys: larger values are refused, not sent to the database


def _text(max_length: int, required: bool = False, **kwargs) -> fields.String:
    if required:
        return fields.String(required=True, validate=validate.Length(min=1, max=max_length),
                             **kwargs)
    return fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=max_length), **kwargs)


class ReferralCreateSchema(Schema):
    journey_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    offer_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    # The handover: what a non-clinical worker needs (About me is added when it is sent).
    goals = _text(4000, required=True, metadata={"description": "What the person wants from it"})
    relapse_signs = _text(4000, metadata={"description": "Early warning signs"})
    crisis_plan = _text(4000, required=True)
    risk_summary = _text(4000, required=True)
    contact_in_hours = _text(500, required=True,
                             metadata={"description": "Who to call in working hours"})
    contact_out_of_hours = _text(500, required=True,
                                 metadata={"description": "Who to call out of hours"})


class ReferralDraftUpdateSchema(Schema):
    """A draft's handover, changed in part: only the fields given change (About me is added
    when it is sent)."""

    goals = fields.String(validate=validate.Length(min=1, max=4000))
    relapse_signs = fields.String(allow_none=True, validate=validate.Length(max=4000))
    crisis_plan = fields.String(validate=validate.Length(min=1, max=4000))
    risk_summary = fields.String(validate=validate.Length(min=1, max=4000))
    contact_in_hours = fields.String(validate=validate.Length(min=1, max=500))
    contact_out_of_hours = fields.String(validate=validate.Length(min=1, max=500))

    @validates_schema
    def _not_empty(self, data, **_kwargs):
        if not data:
            raise ValidationError("Give at least one handover field to change.", "_schema")


class ReferralSendSchema(Schema):
    alternative_basis = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(ALTERNATIVE_BASES),
        metadata={"description": "Share without consent on this basis (needs its own "
                                 "permission; raises a review flag)"})
    alternative_justification = fields.String(load_default=None, allow_none=True,
                                              validate=validate.Length(min=10, max=2000))

    @validates_schema
    def _both_or_neither(self, data, **_kw):
        if data.get("alternative_basis") and not data.get("alternative_justification"):
            raise ValidationError("Give the justification for sharing without consent",
                                  "alternative_justification")
        if data.get("alternative_justification") and not data.get("alternative_basis"):
            raise ValidationError("Choose the alternative lawful basis", "alternative_basis")


class ReferralAcceptSchema(Schema):
    waitlist = fields.Boolean(load_default=False)
    expected_start = fields.Date(load_default=None, allow_none=True,
                                 metadata={"description": "Needed when waitlisted"})


class ReferralNoBodySchema(Schema):
    """No body (or an empty JSON object)."""


def reason_schema(action: str) -> type[Schema]:
    """decline/hold/fail/cancel: a coded reason (checked by the lifecycle: missing → 422)."""
    to_state = ACTIONS[action][1]
    codes = REASONS_FOR[to_state]
    return type(f"Referral{action.title()}Schema", (Schema,), {
        "reason_code": fields.String(load_default=None, allow_none=True,
                                     validate=validate.OneOf(codes),
                                     metadata={"description": " | ".join(codes)}),
        "reason_text": fields.String(load_default=None, allow_none=True,
                                     validate=validate.Length(max=2000)),
    })


ACTION_SCHEMAS: dict[str, type[Schema]] = {
    "send": ReferralSendSchema,
    "accept": ReferralAcceptSchema,
    "start": ReferralNoBodySchema,
    "resume": ReferralNoBodySchema,
    "complete": ReferralNoBodySchema,
    **{action: reason_schema(action) for action in ("decline", "hold", "fail", "cancel")},
}


class ReferralAssignSchema(Schema):
    user_id = fields.Integer(required=True, allow_none=True, strict=True,
                             validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "A worker of your organisation; "
                                                      "null to unassign"})


class ReferralContactCreateSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(CONTACT_OUTCOMES))
    happened_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    note = _text(4000)


class ReferralNoteCreateSchema(Schema):
    kind = fields.String(load_default="note", validate=validate.OneOf(NOTE_KINDS),
                         metadata={"description": "client-voice: the person's own words"})
    text = _text(8000, required=True)


class ReferralListArgsSchema(Schema):
    box = fields.String(load_default=None, validate=validate.OneOf(("inbox", "outbox")),
                        metadata={"description": "inbox (VCSE, default there) or outbox "
                                                 "(statutory, default there)"})
    status = fields.String(load_default=None, validate=validate.OneOf(REFERRAL_STATES))
    offer = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    assignee = fields.String(load_default=None,
                             validate=validate.Regexp(_ASSIGNEE, error="Use a user id, me or none"))
    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200),
                           metadata={"description": "next_cursor of the previous page"})


# --- responses --------------------------------------------------------------------------------

class ReferralRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class ReferralOfferRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    organisation_id = fields.Integer()
    organisation_name = fields.String()


class ReferralPersonSchema(Schema):
    """Shaped per role: VCSE callers get no NHS number or date of birth."""

    id = fields.Integer()
    name = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    preferred_name = fields.String(allow_none=True)
    pronouns = fields.String(allow_none=True)
    communication_needs = fields.String(allow_none=True)
    postcode_district = fields.String(allow_none=True)
    borough = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    nhs_number = fields.String()
    date_of_birth = fields.Date()


class ReferralHandoverSchema(Schema):
    about_me = fields.String(allow_none=True,
                             metadata={"description": "Snapshot of About me when sent"})
    goals = fields.String(allow_none=True)
    relapse_signs = fields.String(allow_none=True)
    crisis_plan = fields.String(allow_none=True)
    risk_summary = fields.String(allow_none=True)
    contact_in_hours = fields.String(allow_none=True)
    contact_out_of_hours = fields.String(allow_none=True)


class ReferralEventSchema(Schema):
    id = fields.Integer()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    reason_code = fields.String(allow_none=True)
    reason_text = fields.String(allow_none=True)
    actor = fields.Nested(ReferralRefSchema, allow_none=True)
    at = fields.DateTime()


class ReferralContactSchema(Schema):
    id = fields.Integer()
    referral_id = fields.Integer()
    outcome = fields.String()
    happened_at = fields.DateTime()
    note = fields.String(allow_none=True)
    recorded_by = fields.Nested(ReferralRefSchema, allow_none=True)
    created_at = fields.DateTime()


class ReferralNoteSchema(Schema):
    id = fields.Integer()
    referral_id = fields.Integer()
    kind = fields.String()
    text = fields.String()
    author = fields.Nested(ReferralRefSchema, allow_none=True)
    author_role = fields.String(metadata={"description": "e.g. peer_worker: a peer worker's "
                                                         "client-voice note shows as such"})
    author_organisation = fields.Nested(ReferralRefSchema, allow_none=True)
    created_at = fields.DateTime()


class ReferralSchema(Schema):
    """A referral; a tombstone (after consent withdrawal) has only id, status and detail."""

    id = fields.Integer()
    status = fields.String(metadata={"description": " | ".join(REFERRAL_STATES)})
    tombstone = fields.Boolean()
    detail = fields.String()
    allowed_actions = fields.List(fields.String(),
                                  metadata={"description": "What the caller may do now"})
    journey_id = fields.Integer()
    offer = fields.Nested(ReferralOfferRefSchema)
    referring_team = fields.Nested(ReferralRefSchema)
    person = fields.Nested(ReferralPersonSchema)
    handover = fields.Nested(ReferralHandoverSchema)
    reason_code = fields.String(allow_none=True)
    reason_text = fields.String(allow_none=True)
    waitlist = fields.Boolean()
    expected_start = fields.Date(allow_none=True)
    assigned_to = fields.Nested(ReferralRefSchema, allow_none=True)
    alternative_basis = fields.String(allow_none=True)
    alternative_justification = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)
    first_contact_at = fields.DateTime(
        allow_none=True, metadata={"description": "First attended contact"})
    updated_at = fields.DateTime()
    version = fields.Integer()
    events = fields.List(fields.Nested(ReferralEventSchema))
    contacts = fields.List(fields.Nested(ReferralContactSchema))
    notes = fields.List(fields.Nested(ReferralNoteSchema))


class ReferralListItemSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    tombstone = fields.Boolean()
    detail = fields.String()
    journey_id = fields.Integer()
    offer = fields.Nested(ReferralOfferRefSchema)
    referring_team = fields.Nested(ReferralRefSchema)
    person = fields.Nested(ReferralRefSchema)
    assigned_to = fields.Nested(ReferralRefSchema, allow_none=True)
    reason_code = fields.String(allow_none=True)
    waitlist = fields.Boolean()
    expected_start = fields.Date(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    version = fields.Integer()


class ReferralPageSchema(Schema):
    items = fields.List(fields.Nested(ReferralListItemSchema))
    next_cursor = fields.String(allow_none=True)
