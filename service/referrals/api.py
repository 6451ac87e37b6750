"""Referrals API: create with the handover, the inbox and outbox, read (ETag), the lifecycle
actions (If-Match), assignment, contacts and notes."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from models.referral_lifecycle import ACTIONS
from service.api_blueprint import Blueprint
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.http import idempotent
from service.referrals import operations as ops
from service.referrals.schemas import (
    ACTION_SCHEMAS,
    ReferralAssignSchema,
    ReferralContactCreateSchema,
    ReferralContactSchema,
    ReferralCreateSchema,
    ReferralDraftUpdateSchema,
    ReferralListArgsSchema,
    ReferralNoteCreateSchema,
    ReferralNoteSchema,
    ReferralPageSchema,
    ReferralSchema,
)

referrals = Blueprint("referrals", __name__, url_prefix="/api/v1/referrals",
                      description="Referrals to community offers (FHIR ServiceRequest + Task) "
                                  "with their handover")

IDEMPOTENCY_KEY = {"parameters": [{"in": "header", "name": "Idempotency-Key", "required": False,
                                   "schema": {"type": "string", "maxLength": 200},
                                   "description": "A retry with the same key returns the first "
                                                  "response; the same key with another body: 422"}]}
IF_MATCH = {"parameters": [{"in": "header", "name": "If-Match", "required": True,
                            "schema": {"type": "string"},
                            "description": "The ETag you last read (missing: 428, stale: 412)"}]}

# OpenAPI links: how a client (or Schemathesis's stateful run) walks the lifecycle, carrying the
# referral id and the ETag each response gives to the next call's If-Match.
REFERRAL_PATH = "/api/v1/referrals/{referral_id}"
NEXT_ACTIONS = {
    "create": ("send", "cancel"),
    "read": (*ACTIONS, "assign"),
    "send": ("accept", "decline", "cancel"),
    "accept": ("start", "cancel", "assign"),
    "start": ("hold", "complete", "fail"),
    "hold": ("resume", "fail", "cancel"),
    "resume": ("hold", "complete", "fail"),
    "assign": ("start", "complete"),
}


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _links(after: str) -> dict:
    """The links from a response about one referral: read it, act on it, add to it."""
    here = {"path.referral_id": "$response.body#/id"}
    links = {"GetReferral": {"operationRef": _operation_ref(REFERRAL_PATH, "get"),
                             "parameters": here, "description": "Read the referral"}}
    for action in NEXT_ACTIONS.get(after, ()):
        links[f"{action.title()}Referral"] = {
            "operationRef": _operation_ref(f"{REFERRAL_PATH}/{action}", "post"),
            "parameters": {**here, "header.If-Match": "$response.header.ETag"},
            "description": f"{action.title()} with the ETag of this response"}
    if after == "read":
        links["ReferAgain"] = {
            "operationRef": _operation_ref("/api/v1/referrals", "post"),
            "requestBody": {"journey_id": "$response.body#/journey_id",
                            "offer_id": "$response.body#/offer/id"},
            "description": "A new referral for the same journey (once this one is closed)"}
    if after in ("create", "read", "accept", "start", "resume"):
        links["AddNote"] = {"operationRef": _operation_ref(f"{REFERRAL_PATH}/notes", "post"),
                            "parameters": here}
    if after in ("read", "accept", "start", "resume"):
        links["RecordContact"] = {
            "operationRef": _operation_ref(f"{REFERRAL_PATH}/contacts", "post"),
            "parameters": here}
    return links


def _links_doc(status: int, after: str) -> dict:
    return {"responses": {status: {"links": _links(after)}}}  # int: merges with @response


_ACTION_DOCS = {
    "send": "Send the draft: snapshots About me into the handover; needs an active consent "
            "naming the receiving organisation, or an alternative lawful basis (own permission, "
            "audited, raises a review flag). Referring team.",
    "accept": "Accept (optionally waitlisted with an expected start). Receiving organisation.",
    "decline": "Decline with a coded reason. Receiving organisation.",
    "start": "Start the work. Receiving organisation.",
    "hold": "Put on hold with a coded reason. Receiving organisation.",
    "resume": "Resume from hold. Receiving organisation.",
    "complete": "Complete. Receiving organisation.",
    "fail": "Could not engage: fail with a coded reason. Receiving organisation.",
    "cancel": "Cancel from any open state with a coded reason. Referring team.",
}


def _respond(referral, level=ops.FULL, status: int = 200, detail: bool = True):
    db = get_session()
    headers = {"ETag": ops.referral_etag(referral)}
    if status == 201:
        headers["Location"] = f"/api/v1/referrals/{referral.id}"
    return ops.referral_view(db, g.principal, referral, level, detail=detail), status, headers


def _respond_state(referral):
    """After an action or assignment: the new state and ETag (GET for the whole referral)."""
    return (ops.referral_state_view(get_session(), g.principal, referral), 200,
            {"ETag": ops.referral_etag(referral)})


@referrals.route("")
class Referrals(MethodView):
    @requires(perm.REFERRALS_READ)
    @referrals.arguments(ReferralListArgsSchema, location="query")
    @referrals.response(200, ReferralPageSchema)
    def get(self, args):
        """The inbox (VCSE: referrals to my organisation's offers, newest first) or the outbox
        (statutory: my team's referrals). Keyset paginated: pass `next_cursor` as `cursor`."""
        items, next_cursor = ops.list_referrals(get_session(), g.principal, **args)
        return {"items": items, "next_cursor": next_cursor}

    @requires(perm.REFERRALS_REFER)
    @idempotent
    @referrals.doc(**IDEMPOTENCY_KEY)
    @referrals.doc(**_links_doc(201, "create"))
    @referrals.arguments(ReferralCreateSchema)
    @referrals.response(201, ReferralSchema)
    def post(self, data):
        """Create a draft referral from the journey's team to an offer, with its handover.
        At most one open referral per person per offer (409). Idempotency-Key honoured."""
        referral = ops.create_referral(get_session(), g.principal, data)
        return _respond(referral, status=201, detail=False)


@referrals.route("/<int:referral_id>")
class ReferralById(MethodView):
    @requires(perm.REFERRALS_READ)
    @referrals.doc(**_links_doc(200, "read"))
    @referrals.response(200, ReferralSchema)
    def get(self, referral_id):
        """The referral with its handover, events, contacts and notes, shaped for the caller.
        ETag for If-Match. After consent withdrawal the receiving organisation gets a tombstone."""
        referral, level = ops.get_referral(get_session(), g.principal, referral_id)
        return _respond(referral, level)

    @requires(perm.REFERRALS_REFER)
    @referrals.doc(**IF_MATCH)
    @referrals.doc(**_links_doc(200, "create"))
    @referrals.arguments(ReferralDraftUpdateSchema)
    @referrals.response(200, ReferralSchema)
    def patch(self, data, referral_id):
        """Change a draft's handover: only the fields given. Referring team; If-Match (428
        without, 412 when stale); 409 once it has been sent. Answers the referral and its new
        ETag."""
        referral = ops.update_draft(get_session(), g.principal, referral_id, data)
        return _respond(referral, detail=False)


def _action_view(action: str) -> type[MethodView]:
    permission = perm.REFERRALS_REFER if action in ops.REFERRER_ACTIONS else perm.REFERRALS_DECIDE

    @requires(permission)
    @referrals.doc(**IF_MATCH)
    @referrals.doc(**_links_doc(200, action))
    @referrals.arguments(ACTION_SCHEMAS[action])
    @referrals.response(200, ReferralSchema)
    def post(self, data, referral_id):
        referral = ops.act_on_referral(get_session(), g.principal, referral_id, action, data)
        return _respond_state(referral)

    post.__doc__ = (f"{_ACTION_DOCS[action]}\n\nIf-Match required (428 without, 412 when stale); "
                    "409 lists allowed_actions when the action is not allowed now. Answers the "
                    "referral's new state and ETag; GET it for the handover and history.")
    return type(f"Referral{action.title()}", (MethodView,), {"post": post})


for _action in ACTIONS:
    referrals.route(f"/<int:referral_id>/{_action}", endpoint=f"referral_{_action}")(
        _action_view(_action))


@referrals.route("/<int:referral_id>/assign")
class ReferralAssign(MethodView):
    @requires(perm.REFERRALS_ASSIGN)
    @referrals.doc(**IF_MATCH)
    @referrals.doc(**_links_doc(200, "assign"))
    @referrals.arguments(ReferralAssignSchema)
    @referrals.response(200, ReferralSchema)
    def post(self, data, referral_id):
        """Assign to a worker of the receiving organisation (null: unassign). If-Match."""
        referral = ops.assign_referral(get_session(), g.principal, referral_id, data["user_id"])
        return _respond_state(referral)

    @requires(perm.REFERRALS_ASSIGN)
    @referrals.doc(**IF_MATCH)
    @referrals.arguments(ReferralAssignSchema)
    @referrals.response(200, ReferralSchema)
    def patch(self, data, referral_id):
        """The same as POST."""
        referral = ops.assign_referral(get_session(), g.principal, referral_id, data["user_id"])
        return _respond_state(referral)


@referrals.route("/<int:referral_id>/contacts")
class ReferralContacts(MethodView):
    @requires(perm.CONTACTS_WRITE)
    @idempotent
    @referrals.doc(**IDEMPOTENCY_KEY)
    @referrals.arguments(ReferralContactCreateSchema)
    @referrals.response(201, ReferralContactSchema)
    def post(self, data, referral_id):
        """Record a contact: attended, did-not-attend or could-not-contact. The first attended
        contact sets the referral's first_contact_at. Idempotency-Key honoured."""
        db = get_session()
        contact = ops.record_contact(db, g.principal, referral_id, data)
        return ops.contact_view(db, contact), 201


@referrals.route("/<int:referral_id>/notes")
class ReferralNotes(MethodView):
    @requires(perm.NOTES_WRITE)
    @idempotent
    @referrals.doc(**IDEMPOTENCY_KEY)
    @referrals.arguments(ReferralNoteCreateSchema)
    @referrals.response(201, ReferralNoteSchema)
    def post(self, data, referral_id):
        """Add a note or the person's own words (`client-voice`), shown with the author's role.
        Idempotency-Key honoured."""
        db = get_session()
        note = ops.add_note(db, g.principal, referral_id, data)
        return ops.note_view(db, note), 201


blueprints = [referrals]


def register(app, api) -> None:  # noqa: ARG001
    from service import csrf

    for blueprint in blueprints:
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)
