"""Person pages for care coordinators and peer workers: find and register a person, the person's
page (About me, needs, consents, journeys, referrals timeline, notes, flags), About me, consent,
notes, planning a journey, statutory discharge and step-up.

Every form validates with the API's marshmallow schemas and calls the same operations as the
API. A form with problems is shown again (422) with the NHS.UK error summary, inline messages
and what was typed, and nothing is written (the request rolls back); success redirects
(POST-redirect-GET) with a flash message that never names the person.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlmodel import select

from models import Journey, Organisation, Person, Team
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from service.flags import operations as flag_ops
from service.flags.schemas import StepUpSchema
from service.journeys import operations as journey_ops
from service.journeys.schemas import JourneyCreateSchema, JourneyDischargeSchema
from service.pages import people_support as support
from service.pages.forms import errors_from, flatten_errors, form_values, load_form
from service.people import operations as people_ops
from service.people.schemas import (
    ConsentCreateSchema,
    ConsentWithdrawSchema,
    PersonCreateSchema,
    PersonPatchSchema,
    PersonSearchSchema,
)
from service.referrals import operations as referral_ops
from service.referrals.schemas import ReferralNoteCreateSchema

bp = Blueprint("people_pages", __name__)

CONSENTS_PER_PAGE = 10
REFERRALS_PER_PAGE = 5
NOTES_PER_PAGE = 10
STALE = ("Someone else changed this record while you were working on it. "
         "Check the latest details and try again.")

REGISTER_WORDING = {
    "nhs_number": "Enter the NHS number",
    "given_name": "Enter their first name",
    "family_name": "Enter their last name",
    "preferred_name": "Preferred name must be 100 characters or fewer",
    "pronouns": "Pronouns must be 50 characters or fewer",
    "date_of_birth": "Enter their date of birth",
    "postcode_district": "Enter the postcode district only, for example NW10",
    "borough": "Borough must be 100 characters or fewer",
    "communication_needs": "Communication needs must be 2000 characters or fewer",
    "needs": "Select the needs from the list",
}
ABOUT_WORDING = {
    "about_me-strengths": "Strengths must be 4000 characters or fewer",
    "about_me-what_matters": "What matters to them must be 4000 characters or fewer",
    "about_me-what_helps": "What helps must be 4000 characters or fewer",
}
CONSENT_WORDING = {
    "organisation_id": "Select the organisation the person agrees to share with",
    "purpose": "Enter what the information will be shared for",
    "method": "Select how consent was given",
    "given_at": "Enter the date consent was given",
    "expires_at": "Enter a real date for when consent ends",
    "lawful_basis": "Select the article 6 lawful basis",
    "condition": "Select the article 9 condition",
}
WITHDRAW_WORDING = {"reason": "Enter why consent is being withdrawn"}
JOURNEY_WORDING = {
    "team_id": "Select the owning team",
    "statutory_contact_user_id": "Select the named statutory contact",
    "review_date": "Enter the date of the first review",
    "review_due": "Enter the date of the first review",
    "safety_net_days": "Enter the safety net as a number of days from 0 to 365",
    "members": "Select the MDT members",
}
DISCHARGE_WORDING = {
    "discharged_on": "Enter the date of statutory discharge",
    "safety_net_days": "Enter the safety net as a number of days from 0 to 365",
}
STEP_UP_WORDING = {
    "flag_id": "Select the flag this step-up answers",
    "trigger": "Enter why the person is being stepped up",
    "note": "The note must be 2000 characters or fewer",
}
NOTE_WORDING = {
    "about": "Select what the note is about",
    "kind": "Select the kind of note",
    "text": "Enter the note",
}


# --- template helpers -------------------------------------------------------------------------

bp.app_template_filter("long_date")(support.long_date)
bp.app_template_filter("long_datetime")(support.long_datetime)
bp.app_template_filter("nhs_number")(support.nhs_number_display)


def _statutory() -> None:
    """These pages are the statutory team's view; VCSE staff work from their inbox."""
    if g.principal.organisation_kind != "statutory":
        raise Forbidden("These pages are for statutory teams.")


def _status(errors: dict) -> int:
    return 422 if errors else 200


def _run(action, wording: dict):
    """Run an operation; its refusals become form errors (never a 500)."""
    try:
        return action(), {}
    except (Invalid, Conflict) as exc:
        return None, support.friendly(errors_from(exc), wording)
    except PreconditionFailed:
        return None, {"_form": [STALE]}


def _person(person_id: int) -> dict:
    _statutory()
    return people_ops.get_person(get_session(), g.principal, person_id)


def _name(person: dict) -> str:
    return f"{person.get('preferred_name') or person['given_name']} {person['family_name']}"


def _page_arg(name: str) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _after_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def person_journeys(db, actor, person_id: int) -> list[dict]:
    """The person's journeys the caller can see, newest first, as the API shapes them."""
    ids = db.exec(select(Journey.id).where(Journey.person_id == person_id)
                  .order_by(Journey.created_at.desc(), Journey.id.desc())).all()
    views = []
    for journey_id in ids:
        try:
            journey = journey_ops.get_journey(db, actor, journey_id)
        except NotFound:
            continue
        views.append(journey_ops.journey_view(db, actor, journey))
    return views


def open_journeys(journeys: list[dict]) -> list[dict]:
    return [j for j in journeys if j["status"] in journey_ops.OPEN_JOURNEY_STATES]


def _timeline(view: dict) -> list[dict]:
    """A referral's events and contacts in time order, worded for people."""
    items = []
    for event in view.get("events", []):
        reason = support.REASON_LABELS.get(event["reason_code"], event["reason_code"])
        items.append({"at": event["at"], "title": support.EVENT_LABELS.get(
            event["action"], event["action"].capitalize()),
            "by": event["actor"]["name"] if event["actor"] else "Stepdown",
            "detail": ": ".join(x for x in (reason, event["reason_text"]) if x) or None,
            "highlight": event["to_status"] in ("rejected", "failed")})
    for contact in view.get("contacts", []):
        items.append({"at": contact["happened_at"],
                      "title": support.CONTACT_LABELS.get(contact["outcome"], contact["outcome"]),
                      "by": contact["recorded_by"]["name"] if contact["recorded_by"] else None,
                      "detail": contact["note"], "highlight": False})
    return sorted(items, key=lambda item: item["at"])


# --- find and register ------------------------------------------------------------------------

@bp.route("/people/find", methods=["GET", "POST"])
@requires(perm.PEOPLE_READ)
def find():
    _statutory()
    errors: dict = {}
    if request.method == "POST":
        data, errors = load_form(PersonSearchSchema(), request.form)
        errors = support.friendly(errors, {"nhs_number": "Enter the NHS number"})
        if data is not None:
            found = people_ops.search_people(get_session(), g.principal, data["nhs_number"])
            if found:
                return redirect(url_for(".person", person_id=found[0]["id"]))
            if g.principal.can(perm.PEOPLE_WRITE):
                # Offer to register them, keeping the number (it never goes in a URL).
                return render_template("people/register.html", errors={}, not_found=True,
                                       form={"nhs_number": data["nhs_number"]},
                                       needs_chosen=[], **_register_context())
            return render_template("people/find.html", form=request.form, errors={},
                                   not_found=True, can_register=False)
    return render_template("people/find.html", form=request.form, errors=errors,
                           not_found=False, can_register=g.principal.can(perm.PEOPLE_WRITE)
                           ), _status(errors)


def _register_context() -> dict:
    names = support.responsibilities(get_session())
    return {"need_options": [(code, name) for code, (name, _scope) in names.items()]}


@bp.route("/people/new", methods=["GET", "POST"])
@requires(perm.PEOPLE_WRITE)
def register_person():
    _statutory()
    errors: dict = {}
    if request.method == "POST":
        data, errors = load_form(PersonCreateSchema(), request.form, lists=("needs",))
        errors = support.friendly(errors, REGISTER_WORDING)
        if data is not None:
            person, errors = _run(lambda: people_ops.register_person(
                get_session(), g.principal, data), REGISTER_WORDING)
            if person is not None:
                flash("Person registered. Record their consent and plan their journey next.",
                      "success")
                return redirect(url_for(".person", person_id=person["id"]))
    return render_template("people/register.html", form=request.form, errors=errors,
                           not_found=False, needs_chosen=request.form.getlist("needs"),
                           **_register_context()), _status(errors)


# --- the person's page ------------------------------------------------------------------------

@bp.get("/people/<int:person_id>")
@requires(perm.PEOPLE_READ)
def person(person_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    names = support.responsibilities(db)
    consents, consents_next = people_ops.list_consents(
        db, actor, person_id, limit=CONSENTS_PER_PAGE, after=_after_arg("consents_after"))
    journeys = person_journeys(db, actor, person_id)

    # Referrals across the journeys, newest first, a page at a time with their timelines.
    summaries = sorted((r for j in journeys for r in j["referrals"]),
                       key=lambda r: (r["created_at"], r["id"]), reverse=True)
    referrals_page = _page_arg("referrals_page")
    start = (referrals_page - 1) * REFERRALS_PER_PAGE
    referrals = []
    for summary in summaries[start:start + REFERRALS_PER_PAGE]:
        referral, level = referral_ops.get_referral(db, actor, summary["id"])
        view = referral_ops.referral_view(db, actor, referral, level)
        view["timeline"] = _timeline(view)
        referrals.append(view)

    notes_page = _page_arg("notes_page")
    notes, notes_total = support.journey_notes(
        db, [j["id"] for j in journeys], limit=NOTES_PER_PAGE,
        offset=(notes_page - 1) * NOTES_PER_PAGE)
    offer_names = {r["id"]: r["offer_name"] for j in journeys for r in j["referrals"]}
    note_views = []
    for note in notes:
        view = referral_ops.note_view(db, note)
        view["about"] = (f"Referral to {offer_names.get(note.referral_id, 'a community offer')}"
                         if note.referral_id else "The journey")
        view["role_label"] = support.ROLE_LABELS.get(view["author_role"], view["author_role"])
        note_views.append(view)

    about = shown["about_me"]
    person_row = db.get(Person, person_id)
    about_role = support.about_me_role(db, person_id, person_row.about_updated_by_user_id,
                                       person_row.about_updated_at)
    flags = support.person_flags(db, actor, person_id)
    today = support.today()
    return render_template(
        "people/person.html", person=shown, name=_name(shown),
        age=support.age_on(shown.get("date_of_birth"), today),
        needs=[(code, *names.get(code, (code, "shared"))) for code in shown.get("needs", [])],
        consents=consents, consents_next=consents_next,
        consents_first=_after_arg("consents_after") is None,
        journeys=journeys, open_journeys=open_journeys(journeys),
        referrals=referrals, referrals_page=referrals_page,
        referrals_pages=max(1, -(-len(summaries) // REFERRALS_PER_PAGE)),
        referrals_total=len(summaries),
        notes=note_views, notes_page=notes_page,
        notes_pages=max(1, -(-notes_total // NOTES_PER_PAGE)), notes_total=notes_total,
        about=about, about_role=support.ROLE_LABELS.get(about_role) if about_role else None,
        flags=flags, trigger_labels=flag_ops.TRIGGER_LABELS, support=support,
        can=actor.can, perm=perm, today=today)


# --- About me ---------------------------------------------------------------------------------

@bp.route("/people/<int:person_id>/about-me", methods=["GET", "POST"])
@requires(perm.ABOUT_ME_WRITE)
def about_me(person_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    draft = request.values.get("draft", "")
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        about = shown["about_me"]
        form = {f"about_me-{key}": about.get(key) or "" for key in
                ("strengths", "what_matters", "what_helps")}
        form["version"] = shown["version"]
    else:
        about = {key: (request.form.get(f"about_me-{key}") or "").strip() or None
                 for key in ("strengths", "what_matters", "what_helps")}
        try:
            data = PersonPatchSchema().load({"about_me": about})
        except ValidationError as exc:
            data, errors = None, support.friendly(flatten_errors(exc.messages), ABOUT_WORDING)
        if data is not None:
            version = support.form_int(request.form, "version")
            _done, errors = _run(lambda: people_ops.update_person(
                db, actor, person_id, data, expected_version=version or -1), ABOUT_WORDING)
            if not errors:
                flash("About me updated", "success")
                if draft.isdigit():
                    return redirect(url_for("coordinator.check", referral_id=int(draft)))
                return redirect(url_for(".person", person_id=person_id) + "#about-me")
    return render_template("people/about_me.html", person=shown, name=_name(shown), form=form,
                           errors=errors, draft=draft if draft.isdigit() else None
                           ), _status(errors)


# --- consents ---------------------------------------------------------------------------------

def _vcse_organisations(db) -> list[tuple[int, str]]:
    return [(o.id, o.name) for o in db.exec(
        select(Organisation).where(Organisation.kind == "vcse").order_by(Organisation.name)).all()]


@bp.route("/people/<int:person_id>/consents/new", methods=["GET", "POST"])
@requires(perm.CONSENT_WRITE)
def record_consent(person_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"given_at": support.today().isoformat(),
                "purpose": "Sharing my details and About me so they can offer me support"}
        if request.args.get("organisation", "").isdigit():
            form["organisation_id"] = request.args["organisation"]
    else:
        values = support.as_ints(form_values(request.form), "organisation_id")
        try:
            data = ConsentCreateSchema().load(values)
        except ValidationError as exc:
            data, errors = None, support.friendly(flatten_errors(exc.messages), CONSENT_WORDING)
        if data is not None:
            _done, errors = _run(lambda: people_ops.record_consent(db, actor, person_id, data),
                                 CONSENT_WORDING)
            if not errors:
                flash("Consent recorded", "success")
                back = request.form.get("draft", "")
                if back.isdigit():
                    return redirect(url_for("coordinator.check", referral_id=int(back)))
                return redirect(url_for(".person", person_id=person_id) + "#consents")
    return render_template(
        "people/consent_form.html", person=shown, name=_name(shown), form=form, errors=errors,
        organisations=_vcse_organisations(db),
        art6=list(support.ART6_LABELS.items()), art9=list(support.ART9_LABELS.items()),
        draft=request.values.get("draft", "") if request.values.get("draft", "").isdigit()
        else None), _status(errors)


@bp.route("/people/<int:person_id>/consents/<int:consent_id>/withdraw", methods=["GET", "POST"])
@requires(perm.CONSENT_WRITE)
def withdraw_consent(person_id: int, consent_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    consents, _next = people_ops.list_consents(db, actor, person_id, limit=200, after=None)
    consent = next((c for c in consents if c["id"] == consent_id), None)
    if consent is None:
        abort(404)
    errors: dict = {}
    if consent["status"] != "active":
        errors = {"_form": ["This consent is no longer active: there is nothing to withdraw."]}
    elif request.method == "POST":
        data, errors = load_form(ConsentWithdrawSchema(), request.form)
        errors = support.friendly(errors, WITHDRAW_WORDING)
        if data is not None:
            result, errors = _run(lambda: people_ops.withdraw_consent(
                db, actor, consent_id, data["reason"]), WITHDRAW_WORDING)
            if result is not None:
                cancelled = len(result.get("cancelled_referral_ids") or [])
                flash("Consent withdrawn." + (f" {cancelled} open referral(s) to the "
                                              "organisation were cancelled." if cancelled else ""),
                      "success")
                return redirect(url_for(".person", person_id=person_id) + "#consents")
    return render_template("people/consent_withdraw.html", person=shown, name=_name(shown),
                           consent=consent, form=request.form, errors=errors
                           ), (_status(errors) if request.method == "POST" else 200)


# --- notes ------------------------------------------------------------------------------------

@bp.route("/people/<int:person_id>/notes/new", methods=["GET", "POST"])
@requires(perm.NOTES_WRITE)
def add_note(person_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    journeys = person_journeys(db, actor, person_id)
    about_options = []
    for journey in journeys:
        about_options.append((f"journey-{journey['id']}",
                              f"The journey with {journey['team']['name']}",
                              f"Planned {support.long_date(journey['created_at'])}"))
        for referral in journey["referrals"]:
            if referral["status"] != "draft":
                label, _colour = support.REFERRAL_STATUS.get(referral["status"], ("", ""))
                about_options.append((f"referral-{referral['id']}",
                                      f"The referral to {referral['offer_name']}",
                                      f"{referral['receiving_organisation_name']}: "
                                      f"{label.lower()}. The receiving organisation sees "
                                      "notes on its referral."))
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"kind": "client-voice" if actor.role == "peer_worker" else "note",
                "about": about_options[0][0] if len(about_options) == 1 else ""}
    elif not journeys:
        errors = {"_form": ["Plan a journey first: notes belong to a journey."]}
    else:
        values = {k: v for k, v in form_values(request.form).items() if k in ("kind", "text")}
        try:
            data, errors = ReferralNoteCreateSchema().load(values), {}
        except ValidationError as exc:
            data, errors = None, flatten_errors(exc.messages)
        about = request.form.get("about", "")
        if about not in {option[0] for option in about_options}:
            errors = {"about": [NOTE_WORDING["about"]], **errors}
        errors = support.friendly(errors, NOTE_WORDING)
        if not errors:
            data = {"kind": data["kind"], "text": data["text"]}
            kind, _, record_id = about.partition("-")
            if kind == "referral":
                action = lambda: referral_ops.add_note(db, actor, int(record_id), data)  # noqa: E731
            else:
                action = lambda: journey_ops.add_note(db, actor, int(record_id), data)  # noqa: E731
            _done, errors = _run(action, NOTE_WORDING)
            if not errors:
                flash("Client voice note added" if data["kind"] == "client-voice"
                      else "Note added", "success")
                return redirect(url_for(".person", person_id=person_id) + "#notes")
    return render_template("people/note_form.html", person=shown, name=_name(shown), form=form,
                           errors=errors, about_options=about_options,
                           journeys=journeys), _status(errors)


# --- journeys ---------------------------------------------------------------------------------

def _team_options(db, actor) -> list[tuple[int, str]]:
    return [(t.id, t.name) for t in db.exec(select(Team).where(
        Team.organisation_id == actor.organisation_id).order_by(Team.name)).all()]


@bp.route("/people/<int:person_id>/journeys/new", methods=["GET", "POST"])
@requires(perm.JOURNEYS_WRITE)
def plan_journey(person_id: int):
    db, actor = get_session(), g.principal
    shown = _person(person_id)
    staff = support.staff_options(db, actor, person_id)
    by_id = {s["id"]: s for s in staff}
    statutory_staff = [s for s in staff if s["kind"] == "statutory"]
    errors: dict = {}
    form = request.form
    members_chosen = request.form.getlist("members")
    if request.method == "GET":
        form = {"statutory_contact_user_id": str(actor.user_id or ""), "safety_net_days": "90"}
        members_chosen = [str(actor.user_id)] if actor.user_id in by_id else []
    else:
        values = form_values(request.form, lists=("members",))
        values = support.as_ints(values, "statutory_contact_user_id", "team_id",
                                 "safety_net_days")
        values["person_id"] = person_id
        if actor.team_id is not None:
            values.pop("team_id", None)
        chosen = values.pop("members", [])
        values["members"] = [{"user_id": int(v), "role": by_id[int(v)]["mdt_role"]}
                             for v in chosen if v.isdigit() and int(v) in by_id]
        if len(values["members"]) != len(chosen):
            errors["members"] = ["Select the MDT members from the list"]
        try:
            data = JourneyCreateSchema().load(values)
        except ValidationError as exc:
            data = None
            errors.update(flatten_errors(exc.messages))
        errors = support.friendly(errors, JOURNEY_WORDING)
        if data is not None and not errors:
            journey, errors = _run(lambda: journey_ops.create_journey(db, actor, data),
                                   JOURNEY_WORDING)
            if journey is not None:
                flash("Journey planned. You can now refer to a community offer.", "success")
                return redirect(url_for(".person", person_id=person_id) + "#journeys")
        errors = {("members" if k.startswith("members") else k): v for k, v in errors.items()}
    team = None
    if actor.team_id is not None:
        team = db.get(Team, actor.team_id)
    return render_template(
        "journeys/plan.html", person=shown, name=_name(shown), form=form, errors=errors,
        team=team, team_options=_team_options(db, actor) if team is None else [],
        contact_options=[(s["id"], f"{s['name']} ({s['role_label']})") for s in statutory_staff],
        member_options=[(s["id"], s["name"], f"{s['role_label']}, {s['organisation_name']}")
                        for s in staff],
        members_chosen=members_chosen, min_date=support.today().isoformat()), _status(errors)


def _journey(journey_id: int) -> tuple[Journey, dict]:
    _statutory()
    db, actor = get_session(), g.principal
    journey = journey_ops.get_journey(db, actor, journey_id)
    return journey, journey_ops.journey_view(db, actor, journey)


@bp.route("/journeys/<int:journey_id>/discharge", methods=["GET", "POST"])
@requires(perm.JOURNEYS_WRITE)
def discharge(journey_id: int):
    db, actor = get_session(), g.principal
    journey, view = _journey(journey_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"discharged_on": support.today().isoformat(),
                "safety_net_days": str(journey.safety_net_days), "version": journey.version}
    else:
        values = support.as_ints(form_values(request.form), "safety_net_days")
        values.pop("version", None)
        try:
            data = JourneyDischargeSchema().load(values)
        except ValidationError as exc:
            data, errors = None, flatten_errors(exc.messages)
        errors = support.friendly(errors, DISCHARGE_WORDING)
        if data is not None:
            version = support.form_int(request.form, "version") or -1
            _done, errors = _run(lambda: journey_ops.discharge_journey(
                db, actor, journey_id, data, expected_version=version), DISCHARGE_WORDING)
            if not errors:
                flash("Statutory discharge recorded. The safety net has started.", "success")
                return redirect(url_for(".person", person_id=journey.person_id) + "#journeys")
    return render_template("journeys/discharge.html", journey=view, form=form, errors=errors
                           ), _status(errors)


@bp.route("/journeys/<int:journey_id>/step-up", methods=["GET", "POST"])
@requires(perm.STEP_UP)
def step_up(journey_id: int):
    db, actor = get_session(), g.principal
    journey, view = _journey(journey_id)
    flags = [f for f in support.person_flags(db, actor, journey.person_id)
             if f.journey_id == journey.id]
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {"version": journey.version}
    else:
        values = support.as_ints(form_values(request.form), "flag_id")
        values.pop("version", None)
        if values.get("flag_id") == "none":
            values.pop("flag_id")
        try:
            data = StepUpSchema().load(values)
        except ValidationError as exc:
            data, errors = None, flatten_errors(exc.messages)
        errors = support.friendly(errors, STEP_UP_WORDING)
        if data is not None:
            version = support.form_int(request.form, "version") or -1
            _done, errors = _run(lambda: flag_ops.step_up(
                db, actor, journey_id, data, expected_version=version), STEP_UP_WORDING)
            if not errors:
                flash("Stepped up: the statutory team has taken the person back. "
                      "Community organisations have been told.", "success")
                return redirect(url_for(".person", person_id=journey.person_id) + "#journeys")
    return render_template(
        "journeys/step_up.html", journey=view, form=form, errors=errors,
        flag_options=[(f.id, f"{support.URGENCY_LABELS.get(f.urgency, f.urgency)}: "
                             f"{flag_ops.TRIGGER_LABELS.get(f.trigger, f.trigger)}",
                       f"Raised {support.long_datetime(f.raised_at)}") for f in flags]
    ), _status(errors)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
