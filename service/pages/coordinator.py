"""Care coordinator pages: "My caseload" and the refer flow.

The refer flow follows the NHS.UK question-page and check-answers patterns:
(1) choose an offer from the directory, filtered by the person's area, age and needs;
(2) write the handover — submitting it creates the draft referral, so answers in progress live
in the draft itself, never in the cookie session; (3) check your answers, with Change links;
(4) send, then a confirmation panel. Every step calls the referrals operations the API uses.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlmodel import select

from models import Flag, Journey, JourneyMember, Offer, Organisation, Person, Referral
from models.flag_rules import response_due
from service import clock
from service.audit import operations as audit
from service.auth import permissions as perm
from service.auth.access import requires
from service.db import get_session
from service.errors import Conflict, Invalid, NotFound, PreconditionFailed
from service.flags.operations import TRIGGER_LABELS, _my_teams_clause
from service.journeys import operations as journey_ops
from service.offers import operations as offer_ops
from service.pages import people_support as support
from service.pages.forms import errors_from, flatten_errors, form_values
from service.pages.people import STALE, _statutory
from service.people import operations as people_ops
from service.referrals import operations as referral_ops
from service.referrals.schemas import ReferralCreateSchema
from service.scoping import _team_clause, consent_covers

bp = Blueprint("coordinator", __name__)

CASELOAD_PER_PAGE = 20
OFFERS_PER_PAGE = 10
DECLINED_RECENT_DAYS = 28

HANDOVER_WORDING = {
    "goals": "Enter what the person wants from this support",
    "relapse_signs": "Early warning signs must be 4000 characters or fewer",
    "crisis_plan": "Enter the crisis plan",
    "risk_summary": "Enter the risk summary",
    "contact_in_hours": "Enter who to call in working hours",
    "contact_out_of_hours": "Enter who to call out of hours",
}
OFFER_WORDING = {"offer_id": "Select a community offer"}


# --- caseload ---------------------------------------------------------------------------------

def _caseload_query(actor, now, today):
    later = sa.orm.aliased(Referral)
    mine = sa.or_(_team_clause(actor, Journey.team_id),
                  sa.exists().where(JourneyMember.journey_id == Journey.id,
                                    JourneyMember.user_id == actor.user_id))
    open_flags = sa.exists().where(Flag.journey_id == Journey.id, Flag.status != "resolved")
    declined = sa.exists().where(
        Referral.journey_id == Journey.id, Referral.status == "rejected",
        Referral.decided_at >= now - timedelta(days=DECLINED_RECENT_DAYS),
        ~sa.exists().where(later.journey_id == Journey.id,
                           later.created_at > Referral.decided_at))
    awaiting = sa.exists().where(Referral.journey_id == Journey.id,
                                 Referral.status == "requested")
    review_soon = sa.and_(Journey.review_due.is_not(None),
                          Journey.review_due <= today + timedelta(days=7))
    drafts = sa.exists().where(Referral.journey_id == Journey.id, Referral.status == "draft")
    flags_first = [(open_flags, 0)] if actor.can(perm.FLAGS_READ) else []
    priority = sa.case(*flags_first, (declined, 1), (awaiting, 2), (review_soon, 3),
                       (drafts, 4), else_=5)
    where = [mine, Journey.status.in_(journey_ops.OPEN_JOURNEY_STATES)]
    return where, priority


@bp.get("/caseload")
@requires(perm.REFERRALS_READ, perm.PEOPLE_READ)
def caseload():
    _statutory()
    db, actor = get_session(), g.principal
    now, today = clock.now(), support.today()
    where, priority = _caseload_query(actor, now, today)
    total = db.scalar(sa.select(sa.func.count()).select_from(Journey).where(*where)) or 0
    pages = max(1, -(-total // CASELOAD_PER_PAGE))
    page = request.args.get("page", "1")
    page = min(int(page), pages) if page.isdigit() and int(page) > 0 else 1
    rows = db.exec(
        sa.select(Journey, Person, priority.label("priority"))
        .join(Person, Person.id == Journey.person_id)
        .where(*where)
        .order_by(priority, Journey.review_due.is_(None), Journey.review_due, Journey.id)
        .offset((page - 1) * CASELOAD_PER_PAGE).limit(CASELOAD_PER_PAGE)
    ).all()
    journey_ids = [journey.id for journey, _person, _p in rows]
    referrals: dict[int, list[dict]] = {jid: [] for jid in journey_ids}
    if journey_ids:
        for referral, offer_name, org_name, target in db.exec(
            sa.select(Referral, Offer.name, Organisation.name, Offer.response_target_days)
            .join(Offer, Offer.id == Referral.offer_id)
            .join(Organisation, Organisation.id == Referral.receiving_organisation_id)
            .where(Referral.journey_id.in_(journey_ids),
                   sa.or_(Referral.status.in_(("draft", "requested", "accepted", "in-progress",
                                               "on-hold", "rejected", "failed")),
                          Referral.updated_at >= now - timedelta(days=DECLINED_RECENT_DAYS)))
            .order_by(Referral.created_at.desc(), Referral.id.desc())
        ).all():
            due = None
            if referral.status == "requested" and referral.sent_at is not None:
                due = response_due(referral.sent_at.astimezone(support.LONDON).date(), target)
            referrals[referral.journey_id].append({
                "id": referral.id, "status": referral.status, "offer_name": offer_name,
                "organisation_name": org_name, "reason_code": referral.reason_code,
                "reply_due": due, "overdue": due is not None and due < today,
                "decided_at": referral.decided_at})
    flags: dict[int, list[Flag]] = {jid: [] for jid in journey_ids}
    if journey_ids and actor.can(perm.FLAGS_READ):
        for flag in db.exec(select(Flag).where(Flag.journey_id.in_(journey_ids),
                                               Flag.status != "resolved",
                                               _my_teams_clause(actor))).all():
            flags[flag.journey_id].append(flag)
    items = []
    for journey, person, rank in rows:
        audit.record(db, actor, "list", "journey", journey.id, person_id=person.id)
        items.append(_caseload_item(journey, person, rank, referrals[journey.id],
                                    flags[journey.id], today, now))
    return render_template("caseload/caseload.html", items=items, page=page, pages=pages,
                           total=total, today=today, can=actor.can, perm=perm)


def _caseload_item(journey, person, rank, referrals, flags, today, now) -> dict:
    actions = []
    urgency = {"emergency": 0, "urgent": 1, "routine": 2}
    for flag in sorted(flags, key=lambda f: urgency.get(f.urgency, 9)):
        actions.append({"tag": f"{support.URGENCY_LABELS.get(flag.urgency)} flag",
                        "colour": {"emergency": "red", "urgent": "orange"}.get(flag.urgency,
                                                                               "yellow"),
                        "text": TRIGGER_LABELS.get(flag.trigger, flag.trigger).capitalize(),
                        "overdue": flag.status == "open" and flag.acknowledgement_due < now})
    for referral in referrals:
        if referral["status"] == "rejected" and rank <= 1:
            reason = support.REASON_LABELS.get(referral["reason_code"], "")
            actions.append({"tag": "Declined", "colour": "red",
                            "text": f"{referral['offer_name']}: {reason.lower()}"
                                    if reason else referral["offer_name"]})
        elif referral["status"] == "requested" and referral["overdue"]:
            when = support.long_date(referral["reply_due"])
            actions.append({"tag": "Reply overdue", "colour": "orange",
                            "text": f"{referral['offer_name']}: reply was due by {when}"})
        elif referral["status"] == "draft":
            actions.append({"tag": "Draft", "colour": "grey",
                            "text": f"{referral['offer_name']}: not sent yet",
                            "href": url_for(".check", referral_id=referral["id"])})
    if journey.review_due is not None and journey.review_due <= today + timedelta(days=7):
        overdue = journey.review_due < today
        actions.append({"tag": "Review overdue" if overdue else "Review due",
                        "colour": "orange" if overdue else "yellow",
                        "text": f"MDT review {support.long_date(journey.review_due)}"})
    label, colour = support.JOURNEY_STATUS.get(journey.status, (journey.status, "grey"))
    return {
        "journey": journey, "person_id": person.id,
        "name": f"{person.preferred_name or person.given_name} {person.family_name}",
        "nhs_number": person.nhs_number, "status_label": label, "status_colour": colour,
        "referrals": referrals,
        "actions": actions, "needs_action": bool(actions),
    }


# --- refer: the shared context ----------------------------------------------------------------

def _journey_and_person(journey_id: int) -> tuple[Journey, dict]:
    _statutory()
    db, actor = get_session(), g.principal
    actor.require(perm.REFERRALS_REFER)
    journey = journey_ops.get_journey(db, actor, journey_id)
    person = people_ops.get_person(db, actor, journey.person_id)
    return journey, person


def _name(person: dict) -> str:
    return f"{person.get('preferred_name') or person['given_name']} {person['family_name']}"


def _draft(referral_id: int) -> tuple[Referral, dict]:
    """A draft referral of my team, as the API shapes it; a sent one goes to its page."""
    _statutory()
    db, actor = get_session(), g.principal
    actor.require(perm.REFERRALS_REFER)
    referral, level = referral_ops.get_referral(db, actor, referral_id)
    return referral, referral_ops.referral_view(db, actor, referral, level, detail=False)


def _not_a_draft(referral: Referral):
    flash("That referral has already been sent: it can no longer be changed.", "warning")
    return redirect(url_for("people_pages.person", person_id=referral.person_id)
                    + "#referrals")


def _about_me(person: dict) -> list[tuple[str, str | None]]:
    about = person["about_me"]
    return [("Their strengths", about.get("strengths")),
            ("What matters to them", about.get("what_matters")),
            ("What helps them", about.get("what_helps"))]


# --- refer step 1: choose an offer ------------------------------------------------------------

def _offer_page(db, actor, person: dict, filters: dict, after: int | None
                ) -> tuple[list[dict], int | None]:
    """A page of active offers matching the filters. "Any of their needs" keeps offers that
    cover at least one of the person's needs (the directory filters by one need at a time)."""
    any_need = filters["need"] == "any" and person.get("needs")
    need = None if filters["need"] in ("any", "all") else filters["need"]
    kept: list[dict] = []
    cursor = after
    for _round in range(20):
        offers, cursor = offer_ops.list_offers(
            db, actor, limit=OFFERS_PER_PAGE, after=cursor, area=filters["area"] or None,
            age=filters["age"], need=need, status="active")
        for offer in offers:
            if any_need and not set(offer["responsibilities"]) & set(person["needs"]):
                continue
            kept.append(offer)
            if len(kept) == OFFERS_PER_PAGE:
                more = offer is not offers[-1] or cursor is not None
                return kept, offer["id"] if more else None
        if cursor is None:
            break
    return kept, None


def _filters(person: dict, today) -> tuple[dict, list, list]:
    areas = [a for a in (person.get("borough"), person.get("postcode_district")) if a]
    area = request.args.get("area", areas[0] if areas else "")
    if area not in areas and area != "":
        area = areas[0] if areas else ""
    names = support.responsibilities(get_session())
    needs = person.get("needs") or []
    need_options = [("any", "Any of their needs")] if needs else []
    need_options += [(code, names.get(code, (code,))[0]) for code in needs
                     if names.get(code, ("", "shared"))[1] != "statutory-only"]
    need_options.append(("all", "Show offers for any need"))
    need = request.args.get("need", "any" if needs else "all")
    if need not in {value for value, _label in need_options}:
        need = need_options[0][0]
    age = support.age_on(person.get("date_of_birth"), today)
    area_options = [(a, a) for a in areas] + [("", "Anywhere")]
    return {"area": area, "need": need, "age": age}, area_options, need_options


@bp.route("/refer/<int:journey_id>", methods=["GET", "POST"])
@requires(perm.REFERRALS_REFER)
def choose_offer(journey_id: int):
    db, actor = get_session(), g.principal
    journey, person = _journey_and_person(journey_id)
    draft_id = request.values.get("draft", "")
    draft = None
    if draft_id.isdigit():
        referral, draft = _draft(int(draft_id))
        if referral.status != "draft" or referral.journey_id != journey.id:
            return _not_a_draft(referral)
    today = support.today()
    filters, area_options, need_options = _filters(person, today)
    errors: dict = {}
    chosen = request.form.get("offer_id") or (str(draft["offer"]["id"]) if draft else "")
    if request.method == "POST":
        offer_id = support.form_int(request.form, "offer_id")
        offer = None
        if offer_id is not None:
            try:
                offer = offer_ops.get_offer(db, actor, offer_id)
            except NotFound:
                offer = None
        if offer is None or offer["status"] != "active":
            errors = {"offer_id": [OFFER_WORDING["offer_id"]]}
        elif draft is None:
            return redirect(url_for(".handover", journey_id=journey_id, offer=offer_id))
        elif offer_id == draft["offer"]["id"]:
            return redirect(url_for(".check", referral_id=draft["id"]))
        else:
            new, errors = _swap_offer(db, actor, draft, offer_id)
            if new is not None:
                return redirect(url_for(".check", referral_id=new.id))
    offers, next_after = _offer_page(db, actor, person, filters, _after())
    names = support.responsibilities(db)
    now = clock.now()
    consented = {o["organisation_id"]: consent_covers(db, person["id"], o["organisation_id"], now)
                 for o in offers}
    query = {k: v for k, v in (("area", filters["area"]), ("need", filters["need"]),
                               ("draft", draft_id if draft else None)) if v is not None}
    return render_template(
        "refer/choose_offer.html", journey=journey, person=person, name=_name(person),
        offers=offers, names=names, consented=consented, filters=filters,
        area_options=area_options, need_options=need_options, chosen=chosen, errors=errors,
        draft=draft, first_page=_after() is None,
        next_href=url_for(".choose_offer", journey_id=journey_id, after=next_after, **query)
        if next_after else None,
        first_href=url_for(".choose_offer", journey_id=journey_id, **query),
        person_needs=set(person.get("needs") or []),
    ), (422 if errors else 200)


def _after() -> int | None:
    value = request.args.get("after", "")
    return int(value) if value.isdigit() else None


def _swap_offer(db, actor, draft: dict, offer_id: int):
    """Changing the offer of a draft: cancel the draft and start one for the new offer with the
    same handover (a draft's offer decides who receives it, so it is not edited in place)."""
    handover = {name: draft["handover"].get(name) for name in referral_ops.HANDOVER_FIELDS}
    try:
        referral_ops.act_on_referral(db, actor, draft["id"], "cancel",
                                     {"reason_code": "no-longer-needed",
                                      "reason_text": "Changed to another offer before sending."},
                                     expected_version=draft["version"])
        new = referral_ops.create_referral(db, actor, {"journey_id": draft["journey_id"],
                                                       "offer_id": offer_id, **handover})
    except (Invalid, Conflict) as exc:
        db.rollback()
        errors = errors_from(exc)
        return None, {"offer_id": [m for ms in errors.values() for m in ms]}
    except PreconditionFailed:
        db.rollback()
        return None, {"_form": [STALE]}
    return new, {}


# --- refer step 2: the handover ---------------------------------------------------------------

def _load_handover(journey_id: int, offer_id: int, form) -> tuple[dict | None, dict]:
    values = {k: v for k, v in form_values(form).items() if k in referral_ops.HANDOVER_FIELDS}
    values.update(journey_id=journey_id, offer_id=offer_id)
    try:
        return ReferralCreateSchema().load(values), {}
    except ValidationError as exc:
        return None, support.friendly(flatten_errors(exc.messages), HANDOVER_WORDING)


@bp.route("/refer/<int:journey_id>/handover", methods=["GET", "POST"])
@requires(perm.REFERRALS_REFER)
def handover(journey_id: int):
    db, actor = get_session(), g.principal
    journey, person = _journey_and_person(journey_id)
    offer_id = support.form_int(request.args, "offer")
    try:
        offer = offer_ops.get_offer(db, actor, offer_id) if offer_id else None
    except NotFound:
        offer = None
    if offer is None:
        flash("Choose a community offer first.", "warning")
        return redirect(url_for(".choose_offer", journey_id=journey_id))
    errors: dict = {}
    if request.method == "POST":
        data, errors = _load_handover(journey_id, offer_id, request.form)
        if data is not None:
            try:
                referral = referral_ops.create_referral(db, actor, data)
            except (Invalid, Conflict) as exc:
                errors = support.friendly(errors_from(exc), HANDOVER_WORDING)
                if "offer_id" in errors:
                    errors = {"_form": errors.pop("offer_id"), **errors}
            else:
                return redirect(url_for(".check", referral_id=referral.id))
    return render_template(
        "refer/handover.html", journey=journey, person=person, name=_name(person), offer=offer,
        form=request.form, errors=errors, about=_about_me(person), draft=None,
        back_href=url_for(".choose_offer", journey_id=journey_id),
        action=url_for(".handover", journey_id=journey_id, offer=offer_id),
    ), (422 if errors else 200)


@bp.route("/refer/drafts/<int:referral_id>/handover", methods=["GET", "POST"])
@requires(perm.REFERRALS_REFER)
def edit_handover(referral_id: int):
    db, actor = get_session(), g.principal
    referral, draft = _draft(referral_id)
    if referral.status != "draft":
        return _not_a_draft(referral)
    person = people_ops.get_person(db, actor, referral.person_id)
    errors: dict = {}
    form = request.form
    if request.method == "GET":
        form = {name: draft["handover"].get(name) or "" for name in referral_ops.HANDOVER_FIELDS}
        form["version"] = draft["version"]
    else:
        data, errors = _load_handover(referral.journey_id, referral.offer_id, request.form)
        if data is not None:
            version = support.form_int(request.form, "version") or -1
            try:
                referral_ops.update_draft(db, actor, referral_id, data, version)
            except (Invalid, Conflict) as exc:
                errors = support.friendly(errors_from(exc), HANDOVER_WORDING)
            except PreconditionFailed:
                errors = {"_form": [STALE]}
            else:
                return redirect(url_for(".check", referral_id=referral_id))
    offer = offer_ops.get_offer(db, actor, referral.offer_id)
    return render_template(
        "refer/handover.html", journey=None, person=person, name=_name(person), offer=offer,
        form=form, errors=errors, about=_about_me(person), draft=draft,
        back_href=url_for(".check", referral_id=referral_id),
        action=url_for(".edit_handover", referral_id=referral_id),
    ), (422 if errors else 200)


# --- refer step 3 and 4: check your answers, send ---------------------------------------------

def _check_page(referral: Referral, draft: dict, errors: dict, status: int = 200):
    db, actor = get_session(), g.principal
    person = people_ops.get_person(db, actor, referral.person_id)
    now = clock.now()
    consent = None
    if consent_covers(db, referral.person_id, referral.receiving_organisation_id, now):
        consents, _next = people_ops.list_consents(db, actor, referral.person_id, limit=200,
                                                   after=None)
        active = [c for c in consents if c["organisation_id"] == referral.receiving_organisation_id
                  and c["status"] == "active"]
        consent = active[-1] if active else None
    offer = offer_ops.get_offer(db, actor, referral.offer_id)
    return render_template(
        "refer/check.html", referral=referral, draft=draft, person=person, name=_name(person),
        offer=offer, about=_about_me(person), consent=consent, errors=errors,
        art6=support.ART6_LABELS), status


@bp.get("/refer/drafts/<int:referral_id>/check")
@requires(perm.REFERRALS_REFER)
def check(referral_id: int):
    referral, draft = _draft(referral_id)
    if referral.status != "draft":
        return _not_a_draft(referral)
    return _check_page(referral, draft, {})


@bp.post("/refer/drafts/<int:referral_id>/send")
@requires(perm.REFERRALS_REFER)
def send(referral_id: int):
    db, actor = get_session(), g.principal
    referral, draft = _draft(referral_id)
    if referral.status != "draft":
        return _not_a_draft(referral)
    version = support.form_int(request.form, "version") or -1
    try:
        referral_ops.act_on_referral(db, actor, referral_id, "send", {},
                                     expected_version=version)
    except (Invalid, Conflict) as exc:
        db.rollback()
        referral, draft = _draft(referral_id)
        return _check_page(referral, draft, errors_from(exc), 422)
    except PreconditionFailed:
        db.rollback()
        referral, draft = _draft(referral_id)
        return _check_page(referral, draft, {"_form": [STALE]}, 412)
    return redirect(url_for(".sent", referral_id=referral_id))


@bp.post("/refer/drafts/<int:referral_id>/cancel")
@requires(perm.REFERRALS_REFER)
def cancel_draft(referral_id: int):
    db, actor = get_session(), g.principal
    referral, draft = _draft(referral_id)
    if referral.status != "draft":
        return _not_a_draft(referral)
    version = support.form_int(request.form, "version") or -1
    try:
        referral_ops.act_on_referral(db, actor, referral_id, "cancel",
                                     {"reason_code": "no-longer-needed",
                                      "reason_text": "Draft deleted before sending."},
                                     expected_version=version)
    except (Conflict, PreconditionFailed):
        db.rollback()
        referral, draft = _draft(referral_id)
        return _check_page(referral, draft, {"_form": [STALE]}, 409)
    flash("Draft referral deleted", "success")
    return redirect(url_for("people_pages.person", person_id=referral.person_id)
                    + "#referrals")


@bp.get("/refer/sent/<int:referral_id>")
@requires(perm.REFERRALS_REFER)
def sent(referral_id: int):
    db, actor = get_session(), g.principal
    referral, view = _draft(referral_id)
    if referral.status == "draft":
        return redirect(url_for(".check", referral_id=referral_id))
    offer = offer_ops.get_offer(db, actor, referral.offer_id)
    due = None
    if referral.sent_at is not None:
        due = response_due(referral.sent_at.astimezone(support.LONDON).date(),
                           offer["response_target_days"])
    return render_template("refer/sent.html", referral=referral, view=view, offer=offer,
                           reply_due=due)


def register(app, api) -> None:  # noqa: ARG001
    app.register_blueprint(bp)
