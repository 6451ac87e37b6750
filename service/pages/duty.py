"""Duty clinician pages: the flags queue of my team (most urgent, then most overdue, first), a
flag's page with the person summary, acknowledge, resolve with an outcome, and step up.

The pages call the flag operations the API calls (`service.flags.operations`) and validate
with its schemas. Forms carry the version they showed (hidden field) as `expected_version`, so
a stale form shows the latest state with a clear message instead of an error page.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlmodel import select

from models import Organisation, Person, Referral, Team, User
from models.vocab import FLAG_OUTCOMES
from service import clock
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from service.flags import operations as flag_ops
from service.flags.schemas import AcknowledgeSchema, QueueArgsSchema, ResolveSchema, StepUpSchema
from service.journeys import operations as journey_ops
from service.pages import people_support as support
from service.pages.forms import errors_from, form_values
from service.pages.vcse import CONCERN_OPTIONS, _load
from service.people import operations as people_ops
from service.referrals import operations as referral_ops

bp = Blueprint("duty", __name__)

QUEUE_PER_PAGE = 20
QUEUE_FILTERS = [("active", "Open and acknowledged"), ("open", "Open"),
                 ("acknowledged", "Acknowledged"), ("resolved", "Resolved")]
FLAG_STATUS = {"open": ("Open", "red"), "acknowledged": ("Acknowledged", "blue"),
               "resolved": ("Resolved", "grey")}
OUTCOMES = {
    "stepped-up": ("Stepped up to our team", "Your team takes the person back for specialist "
                                              "support (the journey is stepped up)"),
    "advice-given": ("Advice given", "You advised the community organisation or the person"),
    "re-referred": ("Re-referred", "The person was referred to another service"),
    "no-action": ("No action needed", None),
    "safeguarding-referral": ("Safeguarding referral made", None),
}
EVENT_LABELS = {"raised": "Flag raised", "re-triggered": "Raised again",
                "acknowledged": "Acknowledged", "escalated": "Escalated to the team manager",
                "resolved": "Resolved"}
STALE = ("This flag changed while you were looking at it. Here is the latest: check it, then "
         "try again.")
STALE_JOURNEY = ("The person's journey changed while you were looking at it. Here is the "
                 "latest: check it, then try again.")
ACK_WORDING = {"note": "The note must be 4000 characters or fewer"}
RESOLVE_WORDING = {"outcome": "Select the outcome",
                   "note": "The note must be 4000 characters or fewer"}
STEP_UP_WORDING = {"note": "The note must be 2000 characters or fewer",
                   "trigger": "Enter why the person is being stepped up"}


def _statutory() -> None:
    if g.principal.organisation_kind != "statutory":
        raise Forbidden("The flags queue is for statutory teams.")


def _version() -> int:
    value = (request.form.get("version") or "").strip()
    return int(value) if value.isdigit() else -1


def _duration(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} minute{'s' if max(minutes, 1) != 1 else ''}"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        text = f"{hours} hour{'s' if hours != 1 else ''}"
        return f"{text} {rest} min" if rest and hours < 4 else text
    days = hours // 24
    return f"{days} days"


def target(flag: dict, now: datetime) -> dict:
    """Time to the acknowledgement target, worded: "Due in 3 hours" / "Overdue by 2 days"."""
    due = flag["acknowledgement_due"]
    if flag["status"] != "open":
        return {"text": None, "overdue": False, "due": due}
    delta = (due - now).total_seconds()
    if delta < 0:
        return {"text": f"Overdue by {_duration(delta)}", "overdue": True, "due": due}
    return {"text": f"Due in {_duration(delta)}", "overdue": False, "due": due}


def _names(db, model, ids) -> dict[int, object]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {row.id: row for row in db.exec(select(model).where(model.id.in_(ids))).all()}


def _event_note(event: dict) -> str | None:
    """A flag event's note for people: "stepped-up: text" → "Stepped up to our team: text"."""
    note = event["note"]
    if event["kind"] == "raised" or not note:
        return None
    if event["kind"] == "resolved":
        code, _, rest = note.partition(": ")
        if code in OUTCOMES:
            return f"{OUTCOMES[code][0]}: {rest}" if rest else OUTCOMES[code][0]
    return note


def _what(flag: dict) -> str:
    if flag["trigger"] == "concern" and flag["category"]:
        return f"Concern: {CONCERN_OPTIONS.get(flag['category'], (flag['category'],))[0].lower()}"
    return flag_ops.TRIGGER_LABELS.get(flag["trigger"], flag["trigger"]).capitalize()


# --- the queue --------------------------------------------------------------------------------

@bp.get("/flags")
@requires(perm.FLAGS_READ)
def queue():
    _statutory()
    db, actor = get_session(), g.principal
    values = {k: v for k, v in form_values(request.args).items() if k in ("status", "cursor")}
    data, errors = _load(QueueArgsSchema(), values, {})
    if errors:
        return redirect(url_for(".queue"))
    try:
        flags, next_cursor = flag_ops.list_flags(db, actor, status=data["status"],
                                                 limit=QUEUE_PER_PAGE, cursor=data["cursor"])
    except Invalid:
        return redirect(url_for(".queue", status=data["status"]))
    people = _names(db, Person, [f["person_id"] for f in flags])
    teams = _names(db, Team, [t for f in flags for t in (f["routed_team_id"],
                                                          f["also_routed_team_id"])])
    referrals = _names(db, Referral, [f["referral_id"] for f in flags])
    organisations = _names(db, Organisation, [r.receiving_organisation_id
                                              for r in referrals.values()])
    now = clock.now()
    rows = []
    for flag in flags:
        person = people.get(flag["person_id"])
        referral = referrals.get(flag["referral_id"])
        rows.append({
            **flag, "what": _what(flag), "target": target(flag, now),
            "person_name": journey_ops.display_name(person) if person else "Unknown",
            "teams": [teams[t].name for t in (flag["routed_team_id"],
                                              flag["also_routed_team_id"]) if t in teams],
            "from_organisation": organisations[referral.receiving_organisation_id].name
            if referral and referral.receiving_organisation_id in organisations else None,
            "status_label": FLAG_STATUS.get(flag["status"], (flag["status"], "grey")),
        })
    status = data["status"]
    return render_template(
        "flags/queue.html", rows=rows, status=status, filters=QUEUE_FILTERS,
        filter_label=dict(QUEUE_FILTERS)[status],
        first_page=data["cursor"] is None,
        next_href=url_for(".queue", status=status, cursor=next_cursor) if next_cursor else None,
        first_href=url_for(".queue", status=status) if data["cursor"] else None)


# --- one flag ---------------------------------------------------------------------------------

def _flag_context(flag_id: int) -> dict:
    """The flag (read, audited) with the person, journey and referral the caller may see."""
    _statutory()
    db, actor = get_session(), g.principal
    flag, events = flag_ops.get_flag(db, actor, flag_id)
    now = clock.now()
    view = flag_ops.flag_view(flag, now, events)
    person = journey = referral = None
    try:
        person = people_ops.get_person(db, actor, flag.person_id)
    except (NotFound, Forbidden):
        person = None
    try:
        journey = journey_ops.journey_view(
            db, actor, journey_ops.get_journey(db, actor, flag.journey_id))
    except (NotFound, Forbidden):
        journey = None
    if flag.referral_id:
        try:
            row, level = referral_ops.get_referral(db, actor, flag.referral_id)
            referral = referral_ops.referral_view(db, actor, row, level, detail=False)
        except (NotFound, Forbidden):
            referral = None
    users = _names(db, User, [view["raised_by_user_id"], view["acknowledged_by_user_id"],
                              view["resolved_by_user_id"]]
                   + [e["actor_user_id"] for e in view["events"]])
    organisations = _names(db, Organisation, [view["raised_by_organisation_id"]])
    teams = _names(db, Team, [view["routed_team_id"], view["also_routed_team_id"]])
    raised_by = users.get(view["raised_by_user_id"])
    history = [{"title": EVENT_LABELS.get(e["kind"], e["kind"].capitalize()), "at": e["at"],
                "by": users[e["actor_user_id"]].display_name
                if e["actor_user_id"] in users else "Stepdown",
                "note": _event_note(e),
                "highlight": e["kind"] in ("escalated", "re-triggered")}
               for e in view["events"]]
    today = support.today()
    can_step_up = (journey is not None and journey["stepped_up_at"] is None
                   and journey["status"] == "active" and view["status"] != "resolved"
                   and actor.can(perm.STEP_UP))
    name = (f"{person.get('preferred_name') or person['given_name']} {person['family_name']}"
            if person else "Person")
    return {
        "name": name, "flag": view, "what": _what(view), "target": target(view, now), "person": person,
        "journey": journey, "referral": referral, "history": history,
        "raised_by": raised_by.display_name if raised_by else None,
        "raised_by_organisation": organisations[view["raised_by_organisation_id"]].name
        if view["raised_by_organisation_id"] in organisations else None,
        "teams": [teams[t].name for t in (view["routed_team_id"], view["also_routed_team_id"])
                  if t in teams],
        "acknowledged_by": users[view["acknowledged_by_user_id"]].display_name
        if view["acknowledged_by_user_id"] in users else None,
        "resolved_by": users[view["resolved_by_user_id"]].display_name
        if view["resolved_by_user_id"] in users else None,
        "status_label": FLAG_STATUS.get(view["status"], (view["status"], "grey")),
        "outcomes": OUTCOMES, "can_work": actor.can(perm.FLAGS_WORK),
        "can_step_up": can_step_up,
        "age": support.age_on(person.get("date_of_birth"), today) if person else None,
        "trigger_label": flag_ops.TRIGGER_LABELS.get(view["trigger"], view["trigger"]),
        "category_label": CONCERN_OPTIONS.get(view["category"], (view["category"],))[0]
        if view["category"] else None,
        "referral_status": support.REFERRAL_STATUS.get(referral["status"], (referral["status"],
                                                                            "grey"))
        if referral and not referral.get("tombstone") else None,
    }


def _flag_page(flag_id: int, errors: dict | None = None, form=None, status: int = 200):
    context = _flag_context(flag_id)
    return render_template("flags/flag.html", errors=errors or {}, form=form or {},
                           **context), status


@bp.get("/flags/<int:flag_id>")
@requires(perm.FLAGS_READ)
def flag(flag_id: int):
    return _flag_page(flag_id)


def _refused(exc: Exception, wording: dict, stale: str = STALE) -> tuple[dict, int]:
    if isinstance(exc, PreconditionFailed):
        return {"_form": [stale]}, 409
    if isinstance(exc, Conflict):
        return {"_form": [exc.detail]}, 409
    return support.friendly(errors_from(exc), wording), 422


@bp.post("/flags/<int:flag_id>/acknowledge")
@requires(perm.FLAGS_WORK)
def acknowledge(flag_id: int):
    _statutory()
    db, actor = get_session(), g.principal
    values = {k: v for k, v in form_values(request.form).items() if k == "note"}
    data, errors = _load(AcknowledgeSchema(), values, ACK_WORDING)
    status = 422
    if not errors:
        try:
            flag_ops.acknowledge_flag(db, actor, flag_id, data, expected_version=_version())
        except (PreconditionFailed, Conflict, Invalid) as exc:
            errors, status = _refused(exc, ACK_WORDING)
        else:
            flash("Flag acknowledged. The escalation clock has stopped.", "success")
            return redirect(url_for(".flag", flag_id=flag_id))
    db.rollback()
    return _flag_page(flag_id, errors, request.form, status)


def _outcome_options() -> list[tuple[str, str, str | None]]:
    return [(code, *OUTCOMES.get(code, (code, None))) for code in FLAG_OUTCOMES]


@bp.route("/flags/<int:flag_id>/resolve", methods=["GET", "POST"])
@requires(perm.FLAGS_WORK)
def resolve(flag_id: int):
    db, actor = get_session(), g.principal
    errors: dict = {}
    status = 200
    form = request.form
    if request.method == "POST":
        values = {k: v for k, v in form_values(request.form).items()
                  if k in ("outcome", "note", "hold_open_referrals")}
        data, errors = _load(ResolveSchema(), values, RESOLVE_WORDING)
        status = 422
        if not errors:
            try:
                flag_ops.resolve_flag(db, actor, flag_id, data, expected_version=_version())
            except (PreconditionFailed, Conflict, Invalid) as exc:
                errors, status = _refused(exc, RESOLVE_WORDING)
            else:
                flash("Flag resolved: the person has been stepped up" if data["outcome"] ==
                      "stepped-up" else "Flag resolved", "success")
                return redirect(url_for(".flag", flag_id=flag_id))
        db.rollback()
    context = _flag_context(flag_id)
    if request.method == "GET":
        form = {"version": context["flag"]["version"]}
    elif status == 409:
        form = {**request.form.to_dict(), "version": context["flag"]["version"]}
    return render_template("flags/resolve.html", form=form, errors=errors,
                           options=_outcome_options(), **context), status


@bp.route("/flags/<int:flag_id>/step-up", methods=["GET", "POST"])
@requires(perm.STEP_UP)
def step_up(flag_id: int):
    db, actor = get_session(), g.principal
    errors: dict = {}
    status = 200
    form = request.form
    if request.method == "POST":
        values = {k: v for k, v in form_values(request.form).items()
                  if k in ("note", "hold_open_referrals")}
        values["flag_id"] = flag_id
        data, errors = _load(StepUpSchema(), values, STEP_UP_WORDING)
        status = 422
        if not errors:
            _statutory()
            journey_id = flag_ops.require_flag(db, actor, flag_id, action="step-up").journey_id
            try:
                flag_ops.step_up(db, actor, journey_id, data, expected_version=_version())
            except (PreconditionFailed, Conflict, Invalid) as exc:
                errors, status = _refused(exc, STEP_UP_WORDING, STALE_JOURNEY)
            else:
                flash("Stepped up: your team has taken the person back. The community "
                      "organisations supporting them have been told.", "success")
                return redirect(url_for(".flag", flag_id=flag_id))
        db.rollback()
    context = _flag_context(flag_id)
    if context["journey"] is None:
        raise NotFound("No such journey.")
    if request.method == "GET" or status == 409:
        form = {**(request.form.to_dict() if request.method == "POST" else {}),
                "version": context["journey"]["version"]}
    return render_template("flags/step_up.html", form=form, errors=errors, **context), status


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
