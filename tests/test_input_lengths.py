"""Oversized text is refused at the edge (422 naming the field, nothing written), never left for
the database: on PostgreSQL a VARCHAR(n) column refuses a longer value with a DataError that
the app can only answer with a 422 naming no field.

The first test walks the request bodies of /api/v1/openapi.json (every flask-smorest argument
schema): each string field must have a documented bound (maxLength, an enum or a bounded
pattern) no larger than the columns it is written to, so a new text field without a limit
fails here. The rest send oversized values through HTTP, to the API and to the pages.
"""

from __future__ import annotations

import re._parser as sre_parse
from datetime import date

import sqlalchemy as sa
from marshmallow import class_registry
from sqlmodel import select

from models import (
    ApiClient,
    Cis2RoleMapping,
    Consent,
    Contact,
    Flag,
    FlagEvent,
    Journey,
    JourneyMember,
    Membership,
    Note,
    Offer,
    OfferArea,
    Organisation,
    Person,
    Referral,
    ReferralEvent,
    Responsibility,
    Team,
    User,
    UserIdentity,
    WebhookSubscription,
)
from service.flags.operations import raise_flag
from service.people.schemas import _POSTCODE_DISTRICT, NHSNumber, PostcodeDistrict
from tests.test_flag_support import make_scenario
from tests.test_referral_support import (
    HANDOVER,
    act,
    create_referral,
    ok,
    referral_row,
    sent_referral,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture
PROBLEM = "application/problem+json"

# ---- the walk: every string in a request body is bounded by its column ----------------------

# The table each request body is written to; a field is its same-named column unless
# ELSEWHERE says otherwise.
STORED_IN = {
    "Organisation": Organisation, "OrganisationPatch": Organisation,
    "Team": Team, "TeamPatch": Team,
    "UserCreate": User, "Identity": UserIdentity, "Membership": Membership,
    "ApiClient": ApiClient, "Cis2RoleMapping": Cis2RoleMapping,
    "OfferCreate": Offer, "OfferPatch": Offer,
    "PersonCreate": Person, "PersonPatch": Person,
    "ConsentCreate": Consent, "ConsentWithdraw": Consent,
    "JourneyCreate": Journey, "JourneyDischarge": Journey,
    "ReferralCreate": Referral, "ReferralDraftUpdate": Referral, "ReferralSend": Referral,
    "ReferralAccept": Referral, "ReferralDecline": Referral, "ReferralHold": Referral,
    "ReferralFail": Referral, "ReferralCancel": Referral, "ReferralNoBody": Referral,
    "ReferralAssign": Referral,
    "ReferralContactCreate": Contact, "ReferralNoteCreate": Note,
    "Concern": Flag, "Acknowledge": Flag, "Resolve": Flag, "StepUp": Journey,
    "WebhookCreate": WebhookSubscription,
}
_PERSON = {"about_me.strengths": [Person.about_strengths],
           "about_me.what_matters": [Person.about_what_matters],
           "about_me.what_helps": [Person.about_what_helps],
           "needs.[]": [Responsibility.code]}  # person_need.responsibility_code references it
_OFFER = {"areas.[]": [OfferArea.area], "responsibilities.[]": [Responsibility.code]}
_REASON = {"reason_code": [Referral.reason_code, ReferralEvent.reason_code],
           "reason_text": [Referral.reason_text, ReferralEvent.reason_text]}
# (body, field) -> the columns the value is written to, where not the same-named one.
ELSEWHERE = {
    ("UserCreate", "role"): [Membership.role],
    ("ApiClient", "scopes.[]"): [ApiClient.scopes],  # distinct scopes, space separated
    **{("PersonCreate", f): c for f, c in _PERSON.items()},
    **{("PersonPatch", f): c for f, c in _PERSON.items()},
    **{("OfferCreate", f): c for f, c in _OFFER.items()},
    **{("OfferPatch", f): c for f, c in _OFFER.items()},
    ("ConsentWithdraw", "reason"): [Consent.withdrawal_reason],
    ("JourneyCreate", "members.[].role"): [JourneyMember.role],
    **{(body, f): c for body in ("ReferralDecline", "ReferralHold", "ReferralFail",
                                 "ReferralCancel") for f, c in _REASON.items()},
    ("Concern", "description"): [Flag.description, FlagEvent.note],
    ("Acknowledge", "note"): [FlagEvent.note],
    ("Resolve", "note"): [Flag.resolution_note, FlagEvent.note],  # stepped-up: ≤ 2000, below
    ("StepUp", "trigger"): [Journey.step_up_trigger],
    ("StepUp", "note"): [Journey.step_up_note],
}
# (body, field) -> why it is not written to a column as sent.
NOT_STORED = {
    ("UserCreate", "password"): "only its hash is stored",
    ("PersonSearch", "nhs_number"): "a search, nothing is written",
}
# Custom fields that load a normalised value: the most characters they can return.
NORMALISED = {NHSNumber: 10,  # ten digits, whatever spaces or dashes were sent
              PostcodeDistrict: sre_parse.parse(_POSTCODE_DISTRICT.pattern).getwidth()[1]}
PARSED_FORMATS = {"date", "date-time"}  # loaded as dates, never stored as text


def _pattern_width(pattern: str) -> int | None:
    widest = sre_parse.parse(pattern).getwidth()[1]
    return None if widest >= sre_parse.MAXREPEAT else widest


def _bound(prop: dict) -> int | None:
    """The most characters the documented rules let through, or None when unbounded."""
    bounds = []
    if "maxLength" in prop:
        bounds.append(prop["maxLength"])
    if prop.get("enum"):
        bounds.append(max(len(str(v)) for v in prop["enum"] if v is not None))
    if "pattern" in prop and _pattern_width(prop["pattern"]) is not None:
        bounds.append(_pattern_width(prop["pattern"]))
    return min(bounds) if bounds else None


def _is_string(prop: dict) -> bool:
    kind = prop.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def _strings(spec: dict, schema: dict, path: str = ""):
    """(field path, property) of every string a client can send in this body schema."""
    while "$ref" in schema or ("allOf" in schema and len(schema["allOf"]) == 1):
        schema = (spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                  if "$ref" in schema else schema["allOf"][0])
    if schema.get("readOnly"):
        return
    if "properties" in schema:
        for name, prop in schema["properties"].items():
            yield from _strings(spec, prop, f"{path}.{name}" if path else name)
    elif "items" in schema:
        yield from _strings(spec, schema["items"], f"{path}.[]")
    elif _is_string(schema) and schema.get("format") not in PARSED_FORMATS:
        yield path, schema


def _marshmallow_field(body: str, path: str):
    """The schema class's field at `path`, for the custom normalising fields."""
    found = class_registry.get_class(f"{body}Schema", all=True)
    schema = (found[0] if isinstance(found, list) else found)()
    field = None
    for part in path.split("."):
        if part == "[]":
            field = field.inner
        else:  # the body's own field, or one of a nested object's
            field = (schema if field is None else field.schema).fields[part]
    return field


def _columns(body: str, path: str) -> list:
    if (body, path) in ELSEWHERE:
        return ELSEWHERE[(body, path)]
    model = STORED_IN.get(body)
    column = getattr(model, path, None) if model is not None and "." not in path else None
    return [column] if column is not None else []


def _length(column) -> int | None:
    return getattr(column.property.columns[0].type, "length", None)


def test_every_string_in_a_request_body_is_bounded_by_its_column(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    problems, checked = [], 0
    for url, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):  # path-level "parameters"
                continue
            body = (operation.get("requestBody") or {}).get("content", {})
            for content in body.values():
                name = content["schema"].get("$ref", "inline").rsplit("/", 1)[-1]
                for path, prop in _strings(spec, content["schema"]):
                    where = f"{method.upper()} {url} {name}.{path}"
                    checked += 1
                    bound = _bound(prop)
                    if bound is None:
                        field = _marshmallow_field(name, path)
                        bound = next((n for kind, n in NORMALISED.items()
                                      if isinstance(field, kind)), None)
                    if bound is None:
                        problems.append(f"{where}: no maxLength (add validate.Length(max=...))")
                        continue
                    if (name, path) in NOT_STORED:
                        continue
                    columns = _columns(name, path)
                    if not columns:
                        problems.append(f"{where}: which column is it written to? (map it in "
                                        "STORED_IN/ELSEWHERE, or NOT_STORED)")
                        continue
                    limits = [n for n in map(_length, columns) if n is not None]
                    if limits and bound > min(limits):
                        problems.append(f"{where}: up to {bound} characters, but the column "
                                        f"holds {min(limits)}")
    assert checked > 80  # the walk found the bodies
    assert not problems, "\n".join(problems)


def test_every_string_query_parameter_is_bounded(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    unbounded = [f"{method.upper()} {url} ?{p['name']}"
                 for url, operations in spec["paths"].items()
                 for method, operation in operations.items() if isinstance(operation, dict)
                 for p in operation.get("parameters", [])
                 if p.get("in") == "query" and _is_string(p.get("schema", {}))
                 and p["schema"].get("format") not in PARSED_FORMATS
                 and _bound(p["schema"]) is None]
    assert not unbounded, "\n".join(unbounded)


def test_the_walk_catches_an_unbounded_field():
    """The rules the walk applies, on made-up properties (so the test above can fail)."""
    assert _bound({"type": "string"}) is None
    assert _bound({"type": "string", "pattern": r"^[0-9]{6,8}(-[0-9]+)?$"}) is None
    assert _bound({"type": "string", "pattern": r"^[A-Z0-9]{3,10}$"}) == 10
    assert _bound({"type": "string", "enum": ["verbal", "written"], "maxLength": 500}) == 7
    assert _columns("PersonCreate", "given_name") == [Person.given_name]
    assert _columns("PersonCreate", "favourite_colour") == []
    assert _length(Person.given_name) == 100


# ---- through HTTP: the API -------------------------------------------------------------------

def _count(db, model) -> int:
    db.expire_all()
    return db.exec(select(sa.func.count()).select_from(model)).one()


def _refused(response, field: str) -> dict:
    assert response.status_code == 422, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM
    errors = response.get_json()["errors"]
    assert field in errors, errors
    return errors


def test_an_oversized_handover_field_is_refused_and_no_referral_written(world):
    for field, limit in (("goals", 4000), ("contact_in_hours", 500)):
        _refused(create_referral(world.coordinator, world.journey.id, world.offer.id,
                                 **{field: "x" * (limit + 1)}), field)
    assert _count(world.db, Referral) == 0
    # At the limit it is stored whole.
    body = ok(create_referral(world.coordinator, world.journey.id, world.offer.id,
                              goals="g" * 4000), 201)
    assert referral_row(world.db, body["id"]).goals == "g" * 4000


def test_an_oversized_name_or_about_me_is_refused_and_nothing_changes(world):
    coordinator, person = world.coordinator, world.person
    before = _count(world.db, Person)
    new_person = {"nhs_number": "9434765919", "given_name": "x" * 101, "family_name": "Okafor",
                  "date_of_birth": "1990-05-17"}
    _refused(coordinator.post("/api/v1/people", json=new_person), "given_name")
    assert _count(world.db, Person) == before
    tag = coordinator.get(f"/api/v1/people/{person.id}").headers["ETag"]
    for change, field in (({"family_name": "x" * 101}, "family_name"),
                          ({"about_me": {"strengths": "x" * 4001}}, "about_me")):
        _refused(coordinator.patch(f"/api/v1/people/{person.id}", json=change,
                                   headers={"If-Match": tag}), field)
    world.db.expire_all()
    stored = world.db.get(Person, person.id)
    assert (stored.family_name, stored.about_strengths) == ("Okafor", "I'm a good cook.")


def test_an_oversized_consent_purpose_is_refused_and_no_consent_written(world, demo):
    before = _count(world.db, Consent)
    body = {"organisation_id": demo["organisations"]["vcse-b"].id, "purpose": "x" * 501,
            "lawful_basis": "public-task", "condition": "health-social-care",
            "method": "verbal", "given_at": "2027-01-04T08:30:00+00:00"}
    _refused(world.coordinator.post(f"/api/v1/people/{world.person.id}/consents", json=body),
             "purpose")
    assert _count(world.db, Consent) == before


def test_an_oversized_contact_note_or_note_is_refused_and_nothing_written(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept", {}))
    ok(act(world.vcse, rid, "start"))
    contact = {"outcome": "attended", "happened_at": "2027-01-04T08:00:00+00:00",
               "note": "x" * 4001}
    _refused(world.vcse.post(f"/api/v1/referrals/{rid}/contacts", json=contact), "note")
    _refused(world.vcse.post(f"/api/v1/referrals/{rid}/notes", json={"text": "x" * 8001}),
             "text")
    assert _count(world.db, Contact) == 0 and _count(world.db, Note) == 0


def test_an_oversized_team_name_or_charity_number_is_refused_and_nothing_written(
        as_user, demo, db):
    admin = as_user("admin")
    organisation = demo["organisations"]["trust-a"].id
    teams, organisations = _count(db, Team), _count(db, Organisation)
    _refused(admin.post(f"/api/v1/organisations/{organisation}/teams",
                        json={"name": "x" * 201}), "name")
    # The pattern alone lets any number of digits follow the dash; the column holds 20.
    _refused(admin.post("/api/v1/organisations", json={
        "kind": "vcse", "name": "Long Number Charity", "charity_number": "1234567-" + "1" * 20}),
        "charity_number")
    assert (_count(db, Team), _count(db, Organisation)) == (teams, organisations)


# ---- values the service composes from bounded input still fit their columns ------------------

def test_a_full_about_me_fits_the_referral_snapshot_when_sent(world):
    """Three answers of 4000 characters plus their headings: the snapshot column holds them."""
    world.db.expire_all()
    person = world.db.get(Person, world.person.id)
    person.about_strengths, person.about_what_matters, person.about_what_helps = (
        "s" * 4000, "m" * 4000, "h" * 4000)
    world.db.add(person)
    world.db.commit()
    rid = sent_referral(world)
    snapshot = referral_row(world.db, rid).about_me
    assert len(snapshot) > 12000 and all(c * 4000 in snapshot for c in "smh")


def test_a_full_resolution_note_fits_the_flag_history(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept", {}))
    flag = ok(world.vcse.post("/api/v1/flags", json={
        "referral_id": rid, "category": "deterioration", "urgency": "urgent"}), 201)
    note = "n" * 4000
    resolved = world.duty.post(f"/api/v1/flags/{flag['id']}/resolve",
                               json={"outcome": "safeguarding-referral", "note": note},
                               headers={"If-Match": f'"flag-{flag["id"]}-v1"'})
    assert ok(resolved)["resolution_note"] == note
    world.db.expire_all()
    last = world.db.exec(select(FlagEvent).order_by(FlagEvent.id.desc())).first()
    assert (last.kind, last.note) == ("resolved", f"safeguarding-referral: {note}")


def test_a_resolution_note_that_steps_the_journey_up_fits_the_step_up_note(app, db, demo,
                                                                          as_user):
    """Resolving `stepped-up` also writes the note to the journey (2000 characters)."""
    inside = make_scenario(app, db, demo, discharged_on=date(2026, 12, 1),
                           safety_net_ends=date(2027, 3, 1))
    with app.app_context():
        flag = raise_flag(db, trigger="review-overdue", journey=inside["journey"],
                          urgency="routine")
        db.commit()
    url, tag = f"/api/v1/flags/{flag.id}/resolve", {"If-Match": f'"flag-{flag.id}-v1"'}
    duty = as_user("duty")
    _refused(duty.post(url, json={"outcome": "stepped-up", "note": "n" * 2001}, headers=tag),
             "note")
    db.expire_all()
    assert db.get(Flag, flag.id).status == "open"
    assert db.get(Journey, inside["journey"].id).stepped_up_at is None
    ok(duty.post(url, json={"outcome": "stepped-up", "note": "n" * 2000}, headers=tag))
    db.expire_all()
    assert db.get(Journey, inside["journey"].id).step_up_note == "n" * 2000


# ---- through HTTP: the pages re-show the form naming the field --------------------------------

def _summary(response) -> str:
    html = response.get_data(as_text=True)
    assert 'class="nhsuk-error-summary"' in html, html[:2000]
    return html.split('nhsuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]


def test_pages_reshow_oversized_text_naming_the_field(world):
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept", {}))
    ok(act(world.vcse, rid, "start"))
    world.later(minutes=30)
    version = str(referral_row(world.db, rid).version)
    cases = [
        (world.coordinator, f"/people/{world.person.id}/about-me",
         {"about_me-strengths": "x" * 4001, "version": str(world.person.version)},
         "about_me-strengths", "4000 characters or fewer"),
        (world.coordinator, f"/refer/{world.journey.id}/handover?offer={world.other_offer.id}",
         {**HANDOVER, "crisis_plan": "x" * 4001}, "crisis_plan", "4000 characters or fewer"),
        (world.vcse, f"/referrals/{rid}/contacts/new",
         {"outcome": "attended", "happened_on": "2027-01-04", "happened_time": "09:00",
          "note": "x" * 4001, "version": version}, "note", "4000 characters or fewer"),
        (world.vcse, f"/referrals/{rid}/notes/new", {"kind": "note", "text": "x" * 8001},
         "text", "8000 characters or fewer"),
        (world.vcse, f"/referrals/{rid}/concern",
         {"category": "deterioration", "urgency": "urgent", "description": "x" * 4001},
         "description", "4000 characters or fewer"),
    ]
    referrals, contacts, notes, flags = (_count(world.db, m) for m in (Referral, Contact, Note,
                                                                        Flag))
    for client, url, form, field, message in cases:
        response = client.post(url, data=form)
        assert response.status_code == 422, (url, response.status_code)
        summary = _summary(response)
        assert f'href="#{field}"' in summary and message in summary, (url, summary)
    assert [_count(world.db, m) for m in (Referral, Contact, Note, Flag)] == [
        referrals, contacts, notes, flags]


def test_the_handover_page_keeps_the_question_and_says_the_limit(world):
    response = world.coordinator.post(
        f"/refer/{world.journey.id}/handover?offer={world.offer.id}",
        data={**HANDOVER, "goals": "x" * 4001, "contact_in_hours": "y" * 501})
    assert response.status_code == 422
    summary = _summary(response)
    assert "Enter what the person wants from this support in 4000 characters or fewer" in summary
    assert "Enter who to call in working hours in 500 characters or fewer" in summary

