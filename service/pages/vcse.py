"""VCSE worker and manager pages: the inbox, the referral page (the handover as a readable
summary, its timeline, contacts and notes; a tombstone once consent is withdrawn), accept /
decline / start / hold / resume / complete / fail, record a contact, add a note, raise a
concern; for managers, the organisation's offers (capacity and status) and assignment.

Every page calls the operations the API calls (`service.referrals`, `service.offers`,
`service.flags`) and validates with the API's marshmallow schemas: no rule lives here. Forms
carry the version they showed in a hidden field, passed as the operations' `expected_version`
(the API's If-Match), so a stale form is shown again with the latest state ("this referral
changed") instead of an error page. A form with problems is shown again (422) with the NHS.UK
error summary, inline messages and what was typed, and writes nothing (the request rolls back);
success redirects (POST-redirect-GET) with a flash message that never names the person.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time

import sqlalchemy as sa
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlmodel import select

from models import Membership, User
from models.flag_rules import response_due
from models.referral_lifecycle import ACTIONS, REASONS_FOR
from models.vocab import CONCERN_CATEGORIES, CONTACT_OUTCOMES
from service import clock
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from service.flags import operations as flag_ops
from service.flags.schemas import ConcernSchema
from service.offers import operations as offer_ops
from service.offers.schemas import OfferPatchSchema
from service.pages import people_support as support
from service.pages.forms import errors_from, flatten_errors, form_values
from service.referrals import operations as referral_ops
from service.referrals.schemas import (
    ACTION_SCHEMAS,
    ReferralAssignSchema,
    ReferralContactCreateSchema,
    ReferralListArgsSchema,
    ReferralNoteCreateSchema,
)
from service.reports.handover import sharing_basis
from service.scoping import FULL

bp = Blueprint("vcse", __name__)

INBOX_PER_PAGE = 20
NEW_ON_FIRST_PAGE = 20
OFFERS_PER_PAGE = 25
PER_PAGE = 10  # contacts and notes on the referral page

# The receiving organisation's words for a referral's status: (label, tag colour).
STATUS = {
    "requested": ("New", "blue"),
    "accepted": ("Accepted", "green"),
    "in-progress": ("In progress", "aqua-green"),
    "on-hold": ("On hold", "yellow"),
    "completed": ("Completed", "white"),
    "rejected": ("Declined", "red"),
    "cancelled": ("Cancelled", "grey"),
    "failed": ("Could not engage", "orange"),
    "draft": ("Draft", "grey"),
}
STATUS_FILTERS = [
    ("", "All referrals"),
    ("requested", "New, waiting for your decision"),
    ("accepted", "Accepted"),
    ("in-progress", "In progress"),
    ("on-hold", "On hold"),
    ("completed", "Completed"),
    ("rejected", "Declined"),
    ("cancelled", "Cancelled"),
    ("failed", "Could not engage"),
]
ASSIGNEE_FILTERS = [("", "Anyone"), ("me", "Assigned to me"), ("none", "Not assigned")]

EVENT_LABELS = {
    "send": "Referral received", "accept": "Accepted", "decline": "Declined",
    "start": "Support started", "hold": "Put on hold", "resume": "Support resumed",
    "complete": "Completed", "fail": "Closed: could not engage", "cancel": "Cancelled",
    "create": "Draft started",
}
CONTACT_LABELS = {"attended": ("Attended", "green"),
                  "did-not-attend": ("Did not attend", "orange"),
                  "could-not-contact": ("Could not contact", "grey")}
CONTACT_OPTIONS = {
    "attended": ("They attended", "You met or spoke with the person"),
    "did-not-attend": ("They did not attend", "An arranged meeting or call did not happen"),
    "could-not-contact": ("We could not contact them", "You tried to reach them, without an "
                                                       "answer"),
}
REASON_HINTS = {
    "no-capacity": "You cannot take new people onto this offer at the moment",
    "not-eligible": "The person does not meet the offer's eligibility",
    "needs-specialist-support": "The statutory team gets a flag to pick this up",
    "person-declined": "The person does not want this support",
    "could-not-contact": "You tried, but could not reach the person",
    "returned-with-advice": "Tell the referring team what might suit the person better",
    "other": "Tell the referring team why below",
    "person-unwell": "Pause while the person is unwell",
    "awaiting-information": "You are waiting for information before carrying on",
    "stepped-up": "The statutory team has taken the person back for now",
    "could-not-engage": "The person did not engage with the support",
}
CONCERN_OPTIONS = {
    "deterioration": ("Their mental health is getting worse", "For example, relapse signs from "
                                                              "the handover"),
    "risk-to-self": ("Risk to themselves", "Thoughts or acts of self-harm or suicide"),
    "risk-to-others": ("Risk to other people", None),
    "safeguarding": ("Safeguarding", "Abuse, neglect or exploitation. The trust's safeguarding "
                                     "team is told too"),
    "physical-health": ("Physical health", None),
    "medication": ("Medication", "For example, stopped taking it or side effects"),
    "disengagement": ("They have stopped engaging", None),
}
URGENCY_OPTIONS = [
    ("emergency", "Emergency", "Someone may be at immediate risk. Call 999 or the crisis line "
                               "first, then tell the team here"),
    ("urgent", "Urgent", "The statutory team should pick this up today: they aim to "
                         "acknowledge within 4 working hours"),
    ("routine", "Routine", "They aim to acknowledge within 2 working days"),
]
OFFER_STATUS = {"active": ("Taking referrals", "green"), "temporarily closed":
                ("Temporarily closed", "yellow"), "inactive": ("Inactive", "grey"),
                "defunct": ("Closed for good", "grey")}
CAPACITY_OPTIONS = [
    ("capacity", "Has capacity", "You can take new people now"),
    ("waitlist", "Waiting list", "New people join a waiting list"),
    ("no-capacity", "No capacity", "You cannot take anyone new at the moment"),
]
OFFER_STATUS_OPTIONS = [
    ("active", "Taking referrals", None),
    ("temporarily closed", "Temporarily closed", "Care coordinators can see it but not refer"),
    ("inactive", "Inactive", "Hidden from the directory"),
    ("defunct", "Closed for good", None),
]

# Each lifecycle action's page: title, button, and what the page says.
ACTION_PAGES = {
    "accept": ("Accept the referral", "Accept referral"),
    "decline": ("Decline the referral", "Decline referral"),
    "start": ("Start the support", "Start support"),
    "hold": ("Put the support on hold", "Put on hold"),
    "resume": ("Resume the support", "Resume support"),
    "complete": ("Complete the referral", "Complete referral"),
    "fail": ("Close the referral: could not engage", "Close referral"),
}
ACTION_DONE = {
    "accept": "Referral accepted", "decline": "Referral declined. The referring team has been "
    "told.", "start": "Support started", "hold": "Support put on hold",
    "resume": "Support resumed", "complete": "Referral completed",
    "fail": "Referral closed: could not engage",
}

STALE = ("This referral changed while you were working on it. Here is the latest: check it, "
         "then try again.")
STALE_OFFER = ("This offer changed while you were working on it. Here is the latest: check it, "
               "then try again.")

ACCEPT_WORDING = {
    "waitlist": "Select whether they start now or join the waiting list",
    "expected_start": "Enter the expected start date as a real date, for example 1 March 2027",
}
REASON_WORDING = {"reason_code": "Select a reason",
                  "reason_text": "Explain the reason in 2000 characters or fewer"}
CONTACT_WORDING = {
    "outcome": "Select what happened",
    "happened_on": "Enter the date of the contact",
    "happened_time": "Enter the time of the contact, for example 14:30",
    "happened_at": "Enter the date and time of the contact",
    "note": "The note must be 4000 characters or fewer",
}
NOTE_WORDING = {"kind": "Select the kind of note", "text": "Enter the note"}
CONCERN_WORDING = {
    "category": "Select what the concern is about",
    "urgency": "Select how urgent it is",
    "description": "What happened must be 4000 characters or fewer",
}
ASSIGN_WORDING = {"user_id": "Select a worker"}
OFFER_WORDING = {
    "capacity": "Select the offer's capacity",
    "waitlist_weeks": "Enter the waiting time as a number of weeks from 0 to 104",
    "status": "Select whether the offer is taking referrals",
    "response_target_days": "Enter the response target as a number of working days from 0 "
                            "to 60",
}

bp.app_template_filter("long_date")(support.long_date)

bp.app_template_filter("long_datetime")(support.long_datetime)


# --- helpers ----------------------------------------------------------------------------------

def _vcse() -> None:
    """These pages are the receiving organisation's; statutory teams work from their caseload."""
    if g.principal.organisation_kind != "vcse":
        raise Forbidden("These pages are for community (VCSE) organisations.")


def _status(errors: dict) -> int:
    return 422 if errors else 200


def _version() -> int:
    """The version the form showed (hidden field); -1 when missing or mangled, which is stale."""
    value = (request.form.get("version") or "").strip()
    return int(value) if value.isdigit() else -1


def _referral(referral_id: int, *, detail: bool = True) -> tuple[object, str, dict]:
    """The referral as the API shapes it for the caller (read, audited)."""
    _vcse()
    db, actor = get_session(), g.principal
    referral, level = referral_ops.get_referral(db, actor, referral_id)
    return referral, level, referral_ops.referral_view(db, actor, referral, level, detail=detail)


def _full(referral_id: int, *, detail: bool = False):
    """The referral in full, or a redirect to its tombstone (consent withdrawn)."""
    referral, level, view = _referral(referral_id, detail=detail)
    if level != FULL:
        return referral, None
    return referral, view


def _reread(referral_id: int, *, detail: bool = False) -> dict | None:
    """After a refused change: drop what the attempt did, read the latest."""
    get_session().rollback()
    _referral_row, view = _full(referral_id, detail=detail)
    return view


def _tombstone_redirect(referral_id: int):
    return redirect(url_for(".referral", referral_id=referral_id))


def _offer_targets(db, actor) -> dict[int, dict]:
    """My organisation's offers (not personal data), by id."""
    offers: dict[int, dict] = {}
    after = None
    for _round in range(20):
        page, after = offer_ops.list_offers(db, actor, limit=200, after=after,
                                            organisation_id=actor.organisation_id)
        offers.update({offer["id"]: offer for offer in page})
        if after is None:
            break
    return offers


def reply_due(status: str, sent_at: datetime | None, target_days: int | None) -> date | None:
    """When a new referral must be answered (the offer's response target, working days)."""
    if status != "requested" or sent_at is None or target_days is None:
        return None
    return response_due(sent_at.astimezone(support.LONDON).date(), target_days)


def about_me_sections(text: str | None) -> list[tuple[str | None, str]]:
    """The About me snapshot ("My strengths\\n…\\n\\nWhat matters to me\\n…") as (title, text)."""
    if not text:
        return []
    titles = ("My strengths", "What matters to me", "What helps me")
    sections: list[list] = []
    for block in text.split("\n\n"):
        first, _, rest = block.partition("\n")
        if first.strip() in titles:
            sections.append([first.strip(), rest.strip()])
        elif sections:
            sections[-1][1] = f"{sections[-1][1]}\n\n{block}".strip()
        else:
            sections.append([None, block.strip()])
    return [(title, body) for title, body in sections if body]


def _sharing(db, referral) -> dict:
    basis = sharing_basis(db, referral, clock.now())
    if basis["kind"] == "consent":
        basis["lawful_basis_label"] = support.ART6_LABELS.get(basis["lawful_basis"],
                                                              basis["lawful_basis"])
        basis["condition_label"] = support.ART9_LABELS.get(basis["condition"], basis["condition"])
    return basis


def timeline(view: dict) -> list[dict]:
    """The referral's events, worded for the receiving organisation, oldest first."""
    items = []
    for event in view.get("events", []):
        if event["action"] == "create":
            continue
        reason = support.REASON_LABELS.get(event["reason_code"], event["reason_code"])
        title = EVENT_LABELS.get(event["action"], event["action"].capitalize())
        if event["action"] == "send":
            title = f"Referral received from {view['referring_team']['name']}"
        items.append({
            "at": event["at"], "title": title,
            "by": event["actor"]["name"] if event["actor"] else None,
            "detail": ": ".join(x for x in (reason, event["reason_text"]) if x) or None,
            "highlight": event["to_status"] in ("rejected", "failed", "cancelled"),
        })
    return items


def _reason_options(action: str) -> list[tuple[str, str, str | None]]:
    to_state = ACTIONS[action][1]
    return [(code, support.REASON_LABELS.get(code, code.replace("-", " ").capitalize()),
             REASON_HINTS.get(code)) for code in REASONS_FOR.get(to_state, ())]


def _load(schema, values: dict, wording: dict) -> tuple[dict | None, dict]:
    try:
        return schema.load(values), {}
    except ValidationError as exc:
        return None, support.friendly(flatten_errors(exc.messages), wording)


def _refused(exc: Exception, wording: dict) -> dict:
    """An operation's refusal as form errors."""
    if isinstance(exc, PreconditionFailed):
        return {"_form": [STALE]}
    return support.friendly(errors_from(exc), wording)


def _apply(referral_id: int, view: dict, data: dict | None, errors: dict, wording: dict,
           change):
    """A referral form's POST once validated: `change(data)` answers the page to go to.

    Returns (response, errors, view): the response when the change was made; otherwise the
    errors to re-show against the latest view, with whatever the attempt wrote rolled back.
    """
    if not errors:
        try:
            return change(data), errors, view
        except (Invalid, Conflict) as exc:
            errors = _refused(exc, wording)
    return None, errors, _reread(referral_id) or view


# --- the inbox --------------------------------------------------------------------------------

def _inbox_filters() -> tuple[dict, dict]:
    """The query's filters, validated by the API's list schema; a bad value is ignored."""
    values = {k: v for k, v in form_values(request.args).items()
              if k in ("status", "offer", "assignee", "cursor")}
    try:
        data = ReferralListArgsSchema().load(values)
    except ValidationError as exc:
        for name in exc.messages:
            values.pop(name, None)
        data = ReferralListArgsSchema().load(values)
    return data, values


def _fetch(db, actor, *, limit: int, cursor: str | None, skip_new: bool = False, **filters
           ) -> tuple[list[dict], str | None]:
    """A page of the inbox from list_referrals; `skip_new` leaves out new referrals (shown in
    their own list first), reading on until the page is full."""
    items: list[dict] = []
    for _round in range(10):
        page, cursor = referral_ops.list_referrals(
            db, actor, box="inbox", limit=limit - len(items), cursor=cursor, **filters)
        items += [i for i in page if not (skip_new and i["status"] == "requested")]
        if len(items) >= limit or cursor is None:
            break
    return items, cursor


def tombstone_detail(detail: str | None) -> str:
    """"consent withdrawn on 2027-01-03" with the date in words (3 January 2027)."""
    text = re.sub(r"\d{4}-\d{2}-\d{2}", lambda m: support.long_date(m.group(0)), detail or "")
    return text[:1].upper() + text[1:]


def _inbox_row(item: dict, offers: dict, today: date) -> dict:
    if item.get("tombstone"):
        return {**item, "detail": tombstone_detail(item.get("detail"))}
    offer = offers.get(item["offer"]["id"], {})
    due = reply_due(item["status"], item.get("sent_at"), offer.get("response_target_days"))
    label, colour = STATUS.get(item["status"], (item["status"], "grey"))
    return {**item, "status_label": label, "status_colour": colour, "reply_due": due,
            "overdue": due is not None and today > due}


@bp.get("/inbox")
@requires(perm.REFERRALS_READ)
def inbox():
    _vcse()
    db, actor = get_session(), g.principal
    data, shown = _inbox_filters()
    offers = _offer_targets(db, actor)
    if data.get("offer") and data["offer"] not in offers:
        data["offer"] = None
        shown.pop("offer", None)
    filters = {k: data.get(k) for k in ("status", "offer", "assignee")}
    today = support.today()
    cursor = data.get("cursor")
    new_items, new_more = [], False
    split = not filters["status"]  # new handovers first, in a list of their own
    try:
        if split and cursor is None:
            new_items, new_cursor = referral_ops.list_referrals(
                db, actor, box="inbox", limit=NEW_ON_FIRST_PAGE,
                **{**filters, "status": "requested"})
            new_more = new_cursor is not None
        items, next_cursor = _fetch(db, actor, limit=INBOX_PER_PAGE, cursor=cursor,
                                    skip_new=split, **filters)
    except Invalid:  # a cursor this service did not give out: start again
        return redirect(url_for(".inbox", **{k: v for k, v in shown.items() if k != "cursor"}))
    query = {k: v for k, v in shown.items() if k != "cursor"}
    return render_template(
        "inbox/inbox.html",
        new_items=[_inbox_row(i, offers, today) for i in new_items], new_more=new_more,
        items=[_inbox_row(i, offers, today) for i in items], split=split,
        first_page=cursor is None, filters=filters, query=query,
        status_options=STATUS_FILTERS, assignee_options=ASSIGNEE_FILTERS,
        offer_options=[("", "All offers")] + [(str(o["id"]), o["name"]) for o in
                                              sorted(offers.values(), key=lambda o: o["name"])],
        next_href=url_for(".inbox", cursor=next_cursor, **query) if next_cursor else None,
        first_href=url_for(".inbox", **query) if cursor else None,
        new_all_href=url_for(".inbox", **{**query, "status": "requested"}),
        filtered=any(filters.values()),
    )


# --- the referral page ------------------------------------------------------------------------

@bp.get("/referrals/<int:referral_id>")
@requires(perm.REFERRALS_READ)
def referral(referral_id: int):
    db, actor = get_session(), g.principal
    if actor.organisation_kind != "vcse":
        # Statutory teams follow their referrals on the person's record.
        row, _level = referral_ops.get_referral(db, actor, referral_id)
        return redirect(url_for("people_pages.person", person_id=row.person_id) + "#referrals")
    row, level, view = _referral(referral_id)
    if level != FULL:
        return render_template("referrals/tombstone.html", view=view,
                               detail=tombstone_detail(view.get("detail")))
    return _referral_page(row, view)


def _page_of(total: int, arg: str) -> tuple[int, int]:
    """The page asked for (1 when missing or out of range) and the number of pages."""
    pages = max(1, -(-total // PER_PAGE))
    value = request.args.get(arg, "")
    page = int(value) if value.isdigit() and len(value) < 6 else 1
    return min(max(page, 1), pages), pages


def _referral_page(row, view: dict, status: int = 200):
    db, actor = get_session(), g.principal
    offer = offer_ops.get_offer(db, actor, view["offer"]["id"])
    due = reply_due(view["status"], view["sent_at"], offer.get("response_target_days"))
    label, colour = STATUS.get(view["status"], (view["status"], "grey"))
    contacts = sorted(view["contacts"], key=lambda c: (c["happened_at"], c["id"]), reverse=True)
    notes = sorted(view["notes"], key=lambda n: (n["created_at"], n["id"]), reverse=True)
    contacts_page, contacts_pages = _page_of(len(contacts), "contacts_page")
    notes_page, notes_pages = _page_of(len(notes), "notes_page")
    return render_template(
        "referrals/referral.html", view=view, offer=offer, status_label=label,
        status_colour=colour, reply_due=due, overdue=due is not None and support.today() > due,
        about=about_me_sections(view["handover"]["about_me"]), sharing=_sharing(db, row),
        timeline=timeline(view), contacts_total=len(contacts), notes_total=len(notes),
        contacts=contacts[(contacts_page - 1) * PER_PAGE:contacts_page * PER_PAGE],
        notes=notes[(notes_page - 1) * PER_PAGE:notes_page * PER_PAGE],
        contacts_page=contacts_page, contacts_pages=contacts_pages, notes_page=notes_page,
        notes_pages=notes_pages,
        contact_labels=CONTACT_LABELS, role_labels=support.ROLE_LABELS,
        reason_label=support.REASON_LABELS.get(view["reason_code"], view["reason_code"]),
        can_contact=view["status"] in referral_ops.CONTACT_STATES and actor.can(
            perm.CONTACTS_WRITE),
        can_assign=actor.can(perm.REFERRALS_ASSIGN)
        and view["status"] in ("requested", "accepted", "in-progress", "on-hold"),
        can=actor.can, perm=perm,
    ), status


# --- lifecycle actions ------------------------------------------------------------------------

def _action_form(action: str, view: dict, form, errors: dict, status: int = 200):
    title, button_text = ACTION_PAGES[action]
    return render_template(
        "referrals/action.html", action=action, view=view, form=form, errors=errors,
        title=title, button_text=button_text, reasons=_reason_options(action),
        allowed=action in view["allowed_actions"],
        status_label=STATUS.get(view["status"], (view["status"], "grey"))[0],
        today=support.today(),
    ), status


def _action_values(action: str) -> dict:
    values = form_values(request.form)
    if action == "accept":
        return {k: v for k, v in values.items() if k in ("waitlist", "expected_start")}
    if action in ("decline", "hold", "fail"):
        return {k: v for k, v in values.items() if k in ("reason_code", "reason_text")}
    return {}


@bp.route("/referrals/<int:referral_id>/<any(accept, decline, start, hold, resume, complete, "
          "fail):action>", methods=["GET", "POST"])
@requires(perm.REFERRALS_DECIDE)
def act(referral_id: int, action: str):
    db, actor = get_session(), g.principal
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    if request.method == "GET":
        form = {"version": view["version"]}
        if action == "accept":
            form["waitlist"] = "false"
        return _action_form(action, view, form, {})
    wording = ACCEPT_WORDING if action == "accept" else REASON_WORDING
    data, errors = _load(ACTION_SCHEMAS[action](), _action_values(action), wording)
    if not errors:
        try:
            referral_ops.act_on_referral(db, actor, referral_id, action, data,
                                         expected_version=_version())
        except PreconditionFailed:
            latest = _reread(referral_id)
            if latest is None:
                return _tombstone_redirect(referral_id)
            form = {**request.form.to_dict(), "version": latest["version"]}
            return _action_form(action, latest, form, {"_form": [STALE]}, 409)
        except (Invalid, Conflict) as exc:
            errors = _refused(exc, wording)
            if "reason_code" in errors:
                errors["reason_code"] = [REASON_WORDING["reason_code"]]
        else:
            flash(ACTION_DONE[action], "success")
            return redirect(url_for(".referral", referral_id=referral_id))
    db.rollback()
    latest = _reread(referral_id) or view
    return _action_form(action, latest, request.form, errors, 422)


# --- contacts and notes -----------------------------------------------------------------------

def _contact_values(form) -> tuple[dict, dict]:
    """The form's date and time (London) as the schema's `happened_at`, plus outcome and note."""
    values = {k: v for k, v in form_values(form).items() if k in ("outcome", "note")}
    errors: dict = {}
    day_text = (form.get("happened_on") or "").strip()
    time_text = (form.get("happened_time") or "").strip().replace(".", ":")
    day = when = None
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        errors["happened_on"] = [CONTACT_WORDING["happened_on"]]
    try:
        hours, minutes = time_text.split(":") if ":" in time_text else (time_text, "00")
        when = time(int(hours), int(minutes))
    except ValueError:
        errors["happened_time"] = [CONTACT_WORDING["happened_time"]]
    if day is not None and when is not None:
        values["happened_at"] = datetime.combine(day, when, support.LONDON).isoformat()
    return values, errors


@bp.route("/referrals/<int:referral_id>/contacts/new", methods=["GET", "POST"])
@requires(perm.CONTACTS_WRITE)
def record_contact(referral_id: int):
    db, actor = get_session(), g.principal
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"happened_on": support.today().isoformat()}
    else:
        values, errors = _contact_values(request.form)
        data, schema_errors = _load(ReferralContactCreateSchema(), values, CONTACT_WORDING)
        if errors:  # the date or time did not parse: say that, not "missing happened_at"
            schema_errors.pop("happened_at", None)
        errors = support.friendly({**errors, **schema_errors}, CONTACT_WORDING)

        def change(data):
            referral_ops.record_contact(db, actor, referral_id, data)
            flash("Contact recorded", "success")
            return redirect(url_for(".referral", referral_id=referral_id) + "#contacts")

        done, errors, view = _apply(referral_id, view, data, errors, CONTACT_WORDING, change)
        if done is not None:
            return done
        if "happened_at" in errors:  # shown against the date question
            errors["happened_on"] = errors.pop("happened_at")
    return render_template(
        "referrals/contact.html", view=view, form=form, errors=errors,
        options=[(code, *CONTACT_OPTIONS[code]) for code in CONTACT_OUTCOMES],
        allowed=view["status"] in referral_ops.CONTACT_STATES,
        status_label=STATUS.get(view["status"], (view["status"], ""))[0],
    ), _status(errors)


@bp.route("/referrals/<int:referral_id>/notes/new", methods=["GET", "POST"])
@requires(perm.NOTES_WRITE)
def add_note(referral_id: int):
    db, actor = get_session(), g.principal
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"kind": "note"}
    else:
        values = {k: v for k, v in form_values(request.form).items() if k in ("kind", "text")}
        data, errors = _load(ReferralNoteCreateSchema(), values, NOTE_WORDING)

        def change(data):
            referral_ops.add_note(db, actor, referral_id, data)
            flash("Their own words added" if data["kind"] == "client-voice" else "Note added",
                  "success")
            return redirect(url_for(".referral", referral_id=referral_id) + "#notes")

        done, errors, view = _apply(referral_id, view, data, errors, NOTE_WORDING, change)
        if done is not None:
            return done
    return render_template("referrals/note.html", view=view, form=form, errors=errors
                           ), _status(errors)


# --- raise a concern --------------------------------------------------------------------------

def _crisis_contacts(view: dict) -> list[tuple[str, str | None]]:
    handover = view["handover"]
    return [("Crisis plan", handover.get("crisis_plan")),
            ("Who to call in working hours", handover.get("contact_in_hours")),
            ("Who to call out of hours", handover.get("contact_out_of_hours"))]


@bp.route("/referrals/<int:referral_id>/concern", methods=["GET", "POST"])
@requires(perm.FLAGS_RAISE)
def raise_concern(referral_id: int):
    db, actor = get_session(), g.principal
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {}
    else:
        values = {k: v for k, v in form_values(request.form).items()
                  if k in ("category", "urgency", "description")}
        values["referral_id"] = referral_id
        data, errors = _load(ConcernSchema(), values, CONCERN_WORDING)

        def change(data):
            _flag, added = flag_ops.raise_concern(db, actor, data)
            return redirect(url_for(".concern_raised", referral_id=referral_id,
                                    urgency=data["urgency"], added=int(added)))

        done, errors, view = _apply(referral_id, view, data, errors, CONCERN_WORDING, change)
        if done is not None:
            return done
    return render_template(
        "flags/concern.html", view=view, form=form, errors=errors,
        categories=[(code, *CONCERN_OPTIONS[code]) for code in CONCERN_CATEGORIES],
        urgencies=URGENCY_OPTIONS, crisis=_crisis_contacts(view),
        emergency=form.get("urgency") == "emergency",
    ), _status(errors)


@bp.get("/referrals/<int:referral_id>/concern/raised")
@requires(perm.FLAGS_RAISE)
def concern_raised(referral_id: int):
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    urgency = request.args.get("urgency", "")
    if urgency not in {u[0] for u in URGENCY_OPTIONS}:
        urgency = "routine"
    return render_template(
        "flags/concern_raised.html", view=view, urgency=urgency,
        urgency_label=support.URGENCY_LABELS[urgency], added=request.args.get("added") == "1",
        guidance=flag_ops.EMERGENCY_GUIDANCE["message"], crisis=_crisis_contacts(view))


# --- assignment (managers) --------------------------------------------------------------------

def _workers(db, actor) -> list[tuple[str, str]]:
    """Active workers and managers of my organisation (who to offer; the operation decides)."""
    rows = db.exec(
        select(User.id, User.display_name, sa.func.min(Membership.role))
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id == actor.organisation_id, User.is_active.is_(True),
               Membership.role.in_(("vcse_worker", "vcse_manager")))
        .group_by(User.id, User.display_name)
        .order_by(User.display_name)
    ).all()
    return [(str(user_id), f"{name} ({support.ROLE_LABELS.get(role, role)})")
            for user_id, name, role in rows]


@bp.route("/referrals/<int:referral_id>/assign", methods=["GET", "POST"])
@requires(perm.REFERRALS_ASSIGN)
def assign(referral_id: int):
    db, actor = get_session(), g.principal
    _row, view = _full(referral_id)
    if view is None:
        return _tombstone_redirect(referral_id)
    errors: dict = {}
    status = 200
    form = request.form
    if request.method == "GET":
        form = {"user_id": str(view["assigned_to"]["id"]) if view["assigned_to"] else "",
                "version": view["version"]}
    else:
        chosen = (request.form.get("user_id") or "").strip()
        values = {"user_id": None if chosen == "none" else
                  (int(chosen) if chosen.isdigit() else chosen)} if chosen else {}
        data, errors = _load(ReferralAssignSchema(), values, ASSIGN_WORDING)
        if not errors:
            try:
                referral_ops.assign_referral(db, actor, referral_id, data["user_id"],
                                             expected_version=_version())
            except PreconditionFailed:
                errors, status = {"_form": [STALE]}, 409
            except (Invalid, Conflict) as exc:
                errors = _refused(exc, ASSIGN_WORDING)
            else:
                flash("Referral assigned" if data["user_id"] else "Referral unassigned",
                      "success")
                return redirect(url_for(".referral", referral_id=referral_id))
        view = _reread(referral_id) or view
        form = {**request.form.to_dict(), "version": view["version"]}
        status = status if status != 200 else 422
    return render_template(
        "referrals/assign.html", view=view, form=form, errors=errors,
        workers=_workers(db, actor),
    ), status


# --- offers (managers) ------------------------------------------------------------------------

@bp.get("/offers")
@requires(perm.OFFERS_MANAGE)
def offers():
    _vcse()
    db, actor = get_session(), g.principal
    after_text = request.args.get("after", "")
    after = int(after_text) if after_text.isdigit() and len(after_text) < 10 else None
    items, next_after = offer_ops.list_offers(db, actor, limit=OFFERS_PER_PAGE, after=after,
                                              organisation_id=actor.organisation_id)
    return render_template(
        "offers/offers.html", offers=items, offer_status=OFFER_STATUS, capacity=support.CAPACITY,
        next_href=url_for(".offers", after=next_after) if next_after else None,
        first_href=url_for(".offers") if after else None)


def _own_offer(offer_id: int) -> dict:
    _vcse()
    db, actor = get_session(), g.principal
    offer = offer_ops.get_offer(db, actor, offer_id)
    if offer["organisation_id"] != actor.organisation_id:
        raise NotFound("No such offer.")
    return offer


@bp.route("/offers/<int:offer_id>/edit", methods=["GET", "POST"])
@requires(perm.OFFERS_MANAGE)
def edit_offer(offer_id: int):
    db, actor = get_session(), g.principal
    offer = _own_offer(offer_id)
    errors: dict = {}
    status = 200
    form = request.form
    if request.method == "GET":
        form = {name: "" if offer.get(name) is None else str(offer[name]) for name in
                ("capacity", "waitlist_weeks", "status", "response_target_days")}
        form["version"] = offer["version"]
    else:
        values = {k: v for k, v in form_values(request.form).items()
                  if k in ("capacity", "waitlist_weeks", "status", "response_target_days")}
        values.setdefault("waitlist_weeks", None)  # a blank waiting time clears it
        data, errors = _load(OfferPatchSchema(), values, OFFER_WORDING)
        if not errors:
            try:
                offer_ops.update_offer(db, actor, offer_id, data, expected_version=_version())
            except PreconditionFailed:
                errors, status = {"_form": [STALE_OFFER]}, 409
            except (Invalid, Conflict) as exc:
                errors = support.friendly(errors_from(exc), OFFER_WORDING)
            else:
                flash("Offer updated", "success")
                return redirect(url_for(".offers"))
        db.rollback()
        offer = _own_offer(offer_id)
        form = {**request.form.to_dict(), "version": offer["version"]}
        status = status if status != 200 else 422
    return render_template(
        "offers/edit.html", offer=offer, form=form, errors=errors,
        capacity_options=CAPACITY_OPTIONS, status_options=OFFER_STATUS_OPTIONS), status


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
