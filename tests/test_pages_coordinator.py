"""Care coordinator and peer worker pages: caseload, find/register, the person's page, About me,
consent, journeys, notes and the refer flow.

The pages call the same operations as the API. A form with problems is shown again (422) with
the NHS.UK error summary, inline messages and what was typed, and writes nothing; success
redirects (POST-redirect-GET). NHS numbers never appear in a URL.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import date

import pytest
from sqlmodel import select

from models import Consent, Flag, Journey, JourneyMember, Note, Person, Referral, ReferralEvent
from service.people.demo import load_demo_offers_and_people

AMY = "9991000011"      # Amara "Amy" Okafor: Brent, consents to Brent Peer Mentors and Harrow
DES = "9996000060"      # Desmond "Des" Clarke: Brent, no consents
PRIYA = "9997000072"    # Priya Shah: registered by trust B (out of trust A's scope)


def _text(response) -> str:
    return response.get_data(as_text=True)


def _error_summary(response) -> list[str]:
    html = _text(response)
    assert 'class="nhsuk-error-summary"' in html, html[:2000]
    block = html.split('nhsuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]
    return [html_lib.unescape(re.sub(r"<[^>]+>|\s+", " ", m)).strip()
            for m in re.findall(r"<li>(.*?)</li>", block, re.S)]


def _title(response) -> str:
    return re.search(r"<title>(.*?)</title>", _text(response), re.S).group(1).strip()


@pytest.fixture
def seeded(app, db, demo):
    with app.app_context():
        loaded = load_demo_offers_and_people(db, demo)
        db.commit()
    return {**demo, **loaded}


@pytest.fixture
def coordinator(as_user):
    return as_user("coordinator")


@pytest.fixture
def peer(as_user):
    return as_user("peer")


def _person(seeded, nhs: str) -> Person:
    return seeded["people"][nhs]


def _plan(client, seeded, person: Person, **overrides) -> Journey:
    casey = seeded["users"]["coordinator@demo.stepdown.test"]
    pat = seeded["users"]["peer@demo.stepdown.test"]
    form = {"statutory_contact_user_id": str(casey.id), "review_due": "2027-02-01",
            "safety_net_days": "90", "members": [str(casey.id), str(pat.id)], **overrides}
    response = client.post(f"/people/{person.id}/journeys/new", data=form)
    assert response.status_code == 302, _error_summary(response)
    return response


def _journey(db, person: Person) -> Journey:
    db.expire_all()
    return db.exec(select(Journey).where(Journey.person_id == person.id)).one()


HANDOVER = {
    "goals": "Meet people nearby and get back to church on Sundays",
    "relapse_signs": "Stops replying to texts; sleeps in the day",
    "crisis_plan": "Call the crisis line; her sister Ada knows the plan",
    "risk_summary": "No current risk to others. Past self-harm when unwell (2019).",
    "contact_in_hours": "Casey Coordinator, Brent CMHT, 020 7946 0000",
    "contact_out_of_hours": "Brent crisis line, 0800 000 0000",
}


# ---- home and caseload -----------------------------------------------------------------------

def test_home_redirects_coordinators_and_peer_workers_to_the_caseload(coordinator, peer, as_user):
    assert coordinator.get("/").headers["Location"].endswith("/caseload")
    assert peer.get("/").headers["Location"].endswith("/caseload")
    assert "/caseload" not in as_user("duty").get("/").headers.get("Location", "")


def test_caseload_renders_for_the_team_and_is_refused_to_vcse_staff(coordinator, peer, as_user,
                                                                    seeded):
    response = coordinator.get("/caseload")
    assert response.status_code == 200
    assert _title(response) == "My caseload – Stepdown"
    assert "No journeys yet" in _text(response)
    assert 'href="/caseload"' in _text(response) and "My caseload</strong>" in _text(response)
    assert peer.get("/caseload").status_code == 200
    assert as_user("vcse").get("/caseload").status_code == 403


def test_caseload_puts_what_needs_action_first_and_is_paginated(coordinator, seeded, db):
    amy, des = _person(seeded, AMY), _person(seeded, DES)
    _plan(coordinator, seeded, des, review_due="2027-03-01")
    _plan(coordinator, seeded, amy, review_due="2027-03-01")
    journey = _journey(db, amy)
    from service.flags.operations import raise_flag

    raise_flag(db, trigger="review-overdue", journey=journey, urgency="urgent")
    db.commit()
    html = _text(coordinator.get("/caseload"))
    assert html.index("Amy Okafor") < html.index("Des Clarke")  # the flag first
    assert "Urgent flag" in html and "999 100 0011" in html

    # Page 2 exists once there are more than 20 journeys.
    for n in range(20):
        person = Person(nhs_number=f"99990{n:04d}0"[:10], given_name=f"P{n}", family_name="Test",
                        date_of_birth=date(1990, 1, 1),
                        created_by_organisation_id=seeded["organisations"]["trust-a"].id)
        db.add(person)
        db.flush()
        db.add(Journey(person_id=person.id, team_id=journey.team_id, status="planned",
                       review_due=date(2027, 6, 1)))
    db.commit()
    first = coordinator.get("/caseload")
    assert 'rel="next"' in _text(first) and "page 1 of 2" in _text(first)
    second = coordinator.get("/caseload?page=2")
    assert second.status_code == 200 and _title(second) == "My caseload (page 2 of 2) – Stepdown"


# ---- find and register -----------------------------------------------------------------------

def test_find_a_person_by_nhs_number_by_post(coordinator, seeded):
    amy = _person(seeded, AMY)
    page = coordinator.get("/people/find")
    assert page.status_code == 200 and _title(page) == "Find a person – Stepdown"
    found = coordinator.post("/people/find", data={"nhs_number": "999 100 0011"})
    assert found.status_code == 302
    assert found.headers["Location"].endswith(f"/people/{amy.id}")
    assert "9991000011" not in found.headers["Location"]

    invalid = coordinator.post("/people/find", data={"nhs_number": "12345"})
    assert invalid.status_code == 422
    assert _error_summary(invalid) == [
        "Enter a valid NHS number: 10 digits with a correct check digit"]
    assert 'value="12345"' in _text(invalid)
    # Out of scope looks exactly like not registered: offered to register, number kept.
    other = coordinator.post("/people/find", data={"nhs_number": PRIYA})
    assert other.status_code == 200 and "Register a new person" in _text(other)
    assert f'value="{PRIYA}"' in _text(other)


def test_peer_workers_find_people_but_are_not_offered_to_register_them(peer, seeded):
    page = peer.get("/people/find")
    assert page.status_code == 200 and "register a new person" not in _text(page)
    unknown = peer.post("/people/find", data={"nhs_number": PRIYA})
    assert unknown.status_code == 200 and "ask a care coordinator" in _text(unknown)
    assert peer.get("/people/new").status_code == 403


def test_register_validates_keeps_values_and_writes_nothing(coordinator, seeded, db):
    count = len(db.exec(select(Person)).all())
    response = coordinator.post("/people/new", data={
        "nhs_number": "9991000012", "given_name": "Sam", "family_name": "",
        "date_of_birth": "2090-01-01", "postcode_district": "NW10 4AB", "needs": ["peer-support"]})
    assert response.status_code == 422
    assert _title(response).startswith("Error: Register a new person")
    messages = _error_summary(response)
    assert messages == [
        "Enter a valid NHS number: 10 digits with a correct check digit",
        "Enter their last name",
        "Enter the postcode district only, for example NW10",
    ]
    html = _text(response)
    assert 'value="Sam"' in html and 'value="NW10 4AB"' in html
    assert re.search(r'value="peer-support"\s+checked', html)
    assert 'href="#family_name"' in html and 'id="family_name-error"' in html
    db.expire_all()
    assert len(db.exec(select(Person)).all()) == count

    # The operation's own rule (date of birth in the future) comes back the same way.
    future = coordinator.post("/people/new", data={
        "nhs_number": "9434765919", "given_name": "Sam", "family_name": "Jones",
        "date_of_birth": "2090-01-01"})
    assert future.status_code == 422
    assert _error_summary(future) == ["The date of birth must be in the past"]


def test_register_a_new_person(coordinator, seeded, db):
    response = coordinator.post("/people/new", data={
        "nhs_number": "943 476 5919", "given_name": "Sam", "family_name": "Jones",
        "preferred_name": "", "date_of_birth": "1990-05-01", "postcode_district": "nw10",
        "borough": "Brent", "needs": ["peer-support", "housing-advice"]})
    assert response.status_code == 302, _error_summary(response)
    person = db.exec(select(Person).where(Person.nhs_number == "9434765919")).one()
    assert response.headers["Location"].endswith(f"/people/{person.id}")
    assert person.postcode_district == "NW10"
    page = coordinator.get(f"/people/{person.id}")
    assert "Person registered" in _text(page)
    duplicate = coordinator.post("/people/new", data={
        "nhs_number": "9434765919", "given_name": "Sam", "family_name": "Jones",
        "date_of_birth": "1990-05-01"})
    assert duplicate.status_code == 409 or duplicate.status_code == 422
    assert _error_summary(duplicate) == ["A person with this NHS number is already registered"]


# ---- the person's page -----------------------------------------------------------------------

def test_person_page_shows_the_record_for_the_team_and_404s_out_of_scope(coordinator, peer,
                                                                        as_user, seeded):
    amy, priya = _person(seeded, AMY), _person(seeded, PRIYA)
    response = coordinator.get(f"/people/{amy.id}")
    assert response.status_code == 200
    assert _title(response) == "Amy Okafor – Stepdown"
    html = _text(response)
    for expected in ("999 100 0011", "About me", "I&#39;m a good cook", "Brent Peer Mentors",
                     "Harrow Resilience Network", "Peer support", "Medication management",
                     "(kept by the statutory team)", "Plan a journey", "Record consent",
                     "Last updated by Casey Coordinator, Care coordinator"):
        assert expected in html, expected
    headings = re.findall(r"<h([1-6])", html.split('id="maincontent"', 1)[1])
    steps = zip(headings, headings[1:], strict=False)
    assert headings[0] == "1" and all(int(b) - int(a) <= 1 for a, b in steps)
    assert peer.get(f"/people/{amy.id}").status_code == 200
    assert coordinator.get(f"/people/{priya.id}").status_code == 404
    assert coordinator.get("/people/999999").status_code == 404
    assert as_user("vcse").get(f"/people/{amy.id}").status_code == 403


def test_pages_have_unique_titles(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    urls = ["/caseload", "/people/find", "/people/new", f"/people/{amy.id}",
            f"/people/{amy.id}/about-me", f"/people/{amy.id}/consents/new",
            f"/people/{amy.id}/notes/new", f"/journeys/{journey.id}/discharge",
            f"/refer/{journey.id}"]
    titles = []
    for url in urls:
        response = coordinator.get(url)
        assert response.status_code == 200, url
        titles.append(_title(response))
    assert len(set(titles)) == len(titles), titles


# ---- consent ---------------------------------------------------------------------------------

def test_record_consent_validates_then_records(coordinator, seeded, db):
    des = _person(seeded, DES)
    brent_peer = seeded["organisations"]["vcse-a"]
    page = coordinator.get(f"/people/{des.id}/consents/new")
    assert page.status_code == 200 and "Record consent to share" in _text(page)

    bad = coordinator.post(f"/people/{des.id}/consents/new", data={
        "organisation_id": str(brent_peer.id), "purpose": "Peer mentoring",
        "given_at": "2027-01-04", "expires_at": "2026-01-01", "lawful_basis": "public-task"})
    assert bad.status_code == 422
    assert _error_summary(bad) == [
        "Select how consent was given", "Select the article 9 condition"]
    assert 'value="Peer mentoring"' not in _text(bad)  # a textarea keeps it as text
    assert ">Peer mentoring</textarea>" in _text(bad)
    assert re.search(rf'value="{brent_peer.id}" selected', _text(bad))
    db.expire_all()
    assert db.exec(select(Consent).where(Consent.person_id == des.id)).all() == []

    expired = coordinator.post(f"/people/{des.id}/consents/new", data={
        "organisation_id": str(brent_peer.id), "purpose": "Peer mentoring", "method": "verbal",
        "given_at": "2027-01-04", "expires_at": "2027-01-02", "lawful_basis": "public-task",
        "condition": "health-social-care"})
    assert expired.status_code == 422
    assert _error_summary(expired) == ["The expiry must be after the date consent was given"]

    ok = coordinator.post(f"/people/{des.id}/consents/new", data={
        "organisation_id": str(brent_peer.id), "purpose": "Peer mentoring", "method": "verbal",
        "given_at": "2027-01-04", "expires_at": "", "lawful_basis": "public-task",
        "condition": "health-social-care"})
    assert ok.status_code == 302, _error_summary(ok)
    consent = db.exec(select(Consent).where(Consent.person_id == des.id)).one()
    assert consent.organisation_id == brent_peer.id and consent.method == "verbal"
    assert "Consent recorded" in _text(coordinator.get(ok.headers["Location"]))


def test_withdraw_consent_needs_a_reason_and_takes_effect(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    consent = db.exec(select(Consent).where(Consent.person_id == amy.id)).first()
    url = f"/people/{amy.id}/consents/{consent.id}/withdraw"
    page = coordinator.get(url)
    assert page.status_code == 200 and "takes effect straight away" in _text(page)
    missing = coordinator.post(url, data={"reason": " "})
    assert missing.status_code == 422
    assert _error_summary(missing) == ["Enter why consent is being withdrawn"]
    db.expire_all()
    assert db.get(Consent, consent.id).withdrawn_at is None
    done = coordinator.post(url, data={"reason": "She asked us to stop sharing"})
    assert done.status_code == 302
    db.expire_all()
    assert db.get(Consent, consent.id).withdrawal_reason == "She asked us to stop sharing"
    assert "Withdrawn" in _text(coordinator.get(f"/people/{amy.id}"))


# ---- journeys --------------------------------------------------------------------------------

def test_plan_a_journey_validates_then_plans_it_with_the_mdt(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    casey = seeded["users"]["coordinator@demo.stepdown.test"]
    pat = seeded["users"]["peer@demo.stepdown.test"]
    val = seeded["users"]["vcse@demo.stepdown.test"]  # Brent Peer Mentors: Amy consented
    page = coordinator.get(f"/people/{amy.id}/journeys/new")
    assert page.status_code == 200 and "Val Worker" in _text(page)
    assert "Riley Resilience" in _text(page)  # Harrow Resilience Network: consented too
    bad = coordinator.post(f"/people/{amy.id}/journeys/new", data={
        "statutory_contact_user_id": "", "review_due": "2026-12-01", "safety_net_days": "400",
        "members": [str(pat.id)]})
    assert bad.status_code == 422
    assert _error_summary(bad) == ["Select the named statutory contact",
                                   "Enter the safety net as a number of days from 0 to 365"]
    assert 'value="400"' in _text(bad) and re.search(rf'value="{pat.id}"\s+checked', _text(bad))
    past = coordinator.post(f"/people/{amy.id}/journeys/new", data={
        "statutory_contact_user_id": str(casey.id), "review_due": "2026-12-01",
        "safety_net_days": "90"})
    assert _error_summary(past) == ["Enter a review date from today onwards"]
    db.expire_all()
    assert db.exec(select(Journey)).all() == []

    _plan(coordinator, seeded, amy, members=[str(casey.id), str(pat.id), str(val.id)])
    journey = _journey(db, amy)
    assert journey.statutory_contact_user_id == casey.id and journey.review_due == date(2027, 2, 1)
    members = {m.user_id: m.role for m in db.exec(select(JourneyMember)).all()}
    assert members == {casey.id: "care-coordinator", pat.id: "peer-worker",
                       val.id: "vcse-worker"}
    html = _text(coordinator.get(f"/people/{amy.id}"))
    assert "Journey planned 4 January 2027" in html and "Refer to a community offer" in html
    assert "Val Worker" in html


def test_record_statutory_discharge_and_step_up(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    url = f"/journeys/{journey.id}/discharge"
    bad = coordinator.post(url, data={"discharged_on": "", "safety_net_days": "90",
                                      "version": str(journey.version)})
    assert bad.status_code == 422 and _error_summary(bad) == ["Enter the date of statutory discharge"]
    stale = coordinator.post(url, data={"discharged_on": "2027-01-04", "safety_net_days": "90",
                                        "version": str(journey.version + 5)})
    assert stale.status_code == 422 and "Someone else changed" in _error_summary(stale)[0]
    ok = coordinator.post(url, data={"discharged_on": "2027-01-04", "safety_net_days": "60",
                                     "version": str(journey.version)})
    assert ok.status_code == 302, _error_summary(ok)
    db.expire_all()
    journey = db.get(Journey, journey.id)
    assert journey.discharged_on == date(2027, 1, 4) and journey.safety_net_days == 60

    # Step-up needs an active journey: a planned one is refused with the operation's reason.
    step = f"/journeys/{journey.id}/step-up"
    refused = coordinator.post(step, data={"trigger": "Relapse signs",
                                           "version": str(journey.version)})
    assert refused.status_code == 422 and "only an active journey" in _error_summary(refused)[0]
    journey.status = "active"
    db.add(journey)
    db.commit()
    missing = coordinator.post(step, data={"trigger": "", "version": str(journey.version)})
    assert _error_summary(missing) == ["Enter why the person is being stepped up"]
    done = coordinator.post(step, data={"trigger": "Relapse signs reported by peer mentor",
                                        "version": str(journey.version)})
    assert done.status_code == 302, _error_summary(done)
    db.expire_all()
    assert db.get(Journey, journey.id).step_up_trigger == "Relapse signs reported by peer mentor"


# ---- the refer flow --------------------------------------------------------------------------

def test_refer_flow_end_to_end_creates_and_sends_a_referral_with_the_handover(coordinator,
                                                                              seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    mentoring = seeded["offers"]["Peer mentoring"]

    # (1) choose an offer: filtered by area, age and needs, with capacity shown.
    choose = coordinator.get(f"/refer/{journey.id}")
    assert choose.status_code == 200
    html = _text(choose)
    assert "Peer mentoring" in html and "Has capacity" in html
    assert "Choice and Control peer coaching" in html and "Waiting list: about 4 weeks" in html
    assert "Hearing Voices peer group" not in html  # temporarily closed
    assert "Employment support" not in html  # Lambeth only, and not one of Amy's needs
    assert "Consent recorded" in html
    none = coordinator.post(f"/refer/{journey.id}", data={})
    assert none.status_code == 422 and _error_summary(none) == ["Select a community offer"]
    chosen = coordinator.post(f"/refer/{journey.id}", data={"offer_id": str(mentoring.id)})
    assert chosen.status_code == 302
    handover_url = chosen.headers["Location"]
    assert handover_url.endswith(f"/refer/{journey.id}/handover?offer={mentoring.id}")

    # (2) the handover: problems re-show the form, keep what was typed, and write nothing.
    page = coordinator.get(handover_url)
    assert page.status_code == 200 and "Write the handover" in _text(page)
    assert "I&#39;m a good cook" in _text(page)  # About me shown, read-only
    partial = coordinator.post(handover_url, data={**HANDOVER, "crisis_plan": "",
                                                   "contact_out_of_hours": ""})
    assert partial.status_code == 422
    assert _error_summary(partial) == ["Enter the crisis plan", "Enter who to call out of hours"]
    assert "Stops replying to texts; sleeps in the day</textarea>" in _text(partial)
    db.expire_all()
    assert db.exec(select(Referral)).all() == []
    saved = coordinator.post(handover_url, data=HANDOVER)
    assert saved.status_code == 302
    referral = db.exec(select(Referral)).one()
    assert referral.status == "draft" and referral.goals == HANDOVER["goals"]
    check_url = saved.headers["Location"]
    assert check_url.endswith(f"/refer/drafts/{referral.id}/check")

    # (3) check your answers, with Change links; changing the handover updates the draft.
    check = coordinator.get(check_url)
    assert check.status_code == 200
    html = _text(check)
    assert "Check your answers before sending the referral" in html
    assert f'href="/refer/drafts/{referral.id}/handover#crisis_plan"' in html
    assert f'href="/refer/{journey.id}?draft={referral.id}"' in html
    assert HANDOVER["risk_summary"] in html
    edit = coordinator.get(f"/refer/drafts/{referral.id}/handover")
    assert HANDOVER["goals"] in _text(edit)
    changed = coordinator.post(f"/refer/drafts/{referral.id}/handover",
                               data={**HANDOVER, "goals": "Join the cooking group",
                                     "version": str(referral.version)})
    assert changed.status_code == 302 and changed.headers["Location"].endswith(check_url)
    db.expire_all()
    referral = db.get(Referral, referral.id)
    assert referral.goals == "Join the cooking group" and referral.status == "draft"

    # (4) send, then the confirmation panel.
    sent = coordinator.post(f"/refer/drafts/{referral.id}/send",
                            data={"version": str(referral.version)})
    assert sent.status_code == 302, _text(sent)[:3000]
    db.expire_all()
    referral = db.get(Referral, referral.id)
    assert referral.status == "requested" and referral.sent_at is not None
    assert referral.crisis_plan == HANDOVER["crisis_plan"]
    assert "I'm a good cook" in referral.about_me  # About me snapshot travels with it
    confirmation = coordinator.get(sent.headers["Location"])
    assert confirmation.status_code == 200
    assert "Referral sent" in _text(confirmation) and "nhsuk-panel" in _text(confirmation)
    assert "Brent Peer Mentors will accept or decline the referral by" in _text(confirmation)
    # The person page shows it with its timeline; sent drafts can no longer be edited.
    html = _text(coordinator.get(f"/people/{amy.id}"))
    assert "Sent, awaiting reply" in html and "Draft started" in html
    assert coordinator.get(check_url).status_code == 302


def test_changing_the_offer_of_a_draft_keeps_the_handover(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    mentoring = seeded["offers"]["Peer mentoring"]
    coaching = seeded["offers"]["Choice and Control peer coaching"]
    saved = coordinator.post(f"/refer/{journey.id}/handover?offer={mentoring.id}", data=HANDOVER)
    draft = db.exec(select(Referral)).one()
    assert saved.status_code == 302
    page = coordinator.get(f"/refer/{journey.id}?draft={draft.id}")
    assert re.search(rf'value="{mentoring.id}"\s+checked', _text(page))
    moved = coordinator.post(f"/refer/{journey.id}",
                             data={"offer_id": str(coaching.id), "draft": str(draft.id)})
    assert moved.status_code == 302
    db.expire_all()
    new = db.exec(select(Referral).where(Referral.status == "draft")).one()
    assert new.offer_id == coaching.id and new.goals == HANDOVER["goals"]
    assert db.get(Referral, draft.id).status == "cancelled"
    assert moved.headers["Location"].endswith(f"/refer/drafts/{new.id}/check")


def test_sending_without_consent_reshows_the_check_page_and_stays_a_draft(coordinator, seeded,
                                                                          db):
    des = _person(seeded, DES)
    _plan(coordinator, seeded, des)
    journey = _journey(db, des)
    mentoring = seeded["offers"]["Peer mentoring"]
    saved = coordinator.post(f"/refer/{journey.id}/handover?offer={mentoring.id}", data=HANDOVER)
    referral = db.exec(select(Referral)).one()
    check = coordinator.get(saved.headers["Location"])
    assert "No consent to share with Brent Peer Mentors" in _text(check)
    refused = coordinator.post(f"/refer/drafts/{referral.id}/send",
                               data={"version": str(referral.version)})
    assert refused.status_code == 422
    assert _error_summary(refused) == [
        "Record the person's consent to share with Brent Peer Mentors, or give an "
        "alternative lawful basis"]
    assert 'href="#consent"' in _text(refused) and 'id="consent"' in _text(refused)
    db.expire_all()
    assert db.get(Referral, referral.id).status == "draft"
    assert db.exec(select(ReferralEvent).where(ReferralEvent.action == "send")).all() == []


def test_refer_pages_404_for_other_teams_journeys(coordinator, seeded, db, app):
    priya = _person(seeded, PRIYA)
    journey = Journey(person_id=priya.id, team_id=seeded["teams"][
        "Lambeth Community Mental Health Team"].id, status="planned")
    db.add(journey)
    db.commit()
    assert coordinator.get(f"/refer/{journey.id}").status_code == 404
    assert coordinator.get(f"/journeys/{journey.id}/discharge").status_code == 404
    assert coordinator.post(f"/refer/{journey.id}/handover?offer=1", data=HANDOVER
                            ).status_code == 404


# ---- peer worker: About me and client voice --------------------------------------------------

def test_peer_worker_edits_about_me_and_adds_a_client_voice_note(coordinator, peer, seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    page = peer.get(f"/people/{amy.id}/about-me")
    assert page.status_code == 200 and _title(page) == "About me: Amy Okafor – Stepdown"
    version = db.get(Person, amy.id).version
    too_long = peer.post(f"/people/{amy.id}/about-me", data={
        "about_me-strengths": "x" * 4001, "about_me-what_matters": "My daughter",
        "about_me-what_helps": "", "version": str(version)})
    assert too_long.status_code == 422
    assert _error_summary(too_long) == ["Strengths must be 4000 characters or fewer"]
    assert ">My daughter</textarea>" in _text(too_long)
    saved = peer.post(f"/people/{amy.id}/about-me", data={
        "about_me-strengths": "I cook for my whole street at Eid",
        "about_me-what_matters": "My daughter", "about_me-what_helps": "Text first",
        "version": str(version)})
    assert saved.status_code == 302, _error_summary(saved)
    html = _text(peer.get(f"/people/{amy.id}"))
    assert "I cook for my whole street at Eid" in html
    assert "Last updated by Pat Peer, Peer worker, 4 January 2027" in html
    stale = peer.post(f"/people/{amy.id}/about-me", data={
        "about_me-strengths": "Old copy", "version": str(version)})
    assert stale.status_code == 422 and "Someone else changed" in _error_summary(stale)[0]

    form = peer.get(f"/people/{amy.id}/notes/new")
    assert re.search(r'value="client-voice"\s+checked', _text(form))
    empty = peer.post(f"/people/{amy.id}/notes/new", data={"kind": "client-voice", "text": "",
                                                            "about": f"journey-{journey.id}"})
    assert empty.status_code == 422 and _error_summary(empty) == ["Enter the note"]
    assert db.exec(select(Note)).all() == []
    added = peer.post(f"/people/{amy.id}/notes/new", data={
        "kind": "client-voice", "about": f"journey-{journey.id}",
        "text": "I want someone who has been through it, not another professional."})
    assert added.status_code == 302, _error_summary(added)
    note = db.exec(select(Note)).one()
    assert note.kind == "client-voice" and note.author_role == "peer_worker"
    html = _text(coordinator.get(f"/people/{amy.id}"))
    assert "Client voice" in html and "not another professional" in html
    assert "Pat Peer, Peer worker, North Thames Mental Health NHS Trust" in html
    # Peer workers cannot refer, consent or plan.
    assert peer.get(f"/refer/{journey.id}").status_code == 403
    assert peer.get(f"/people/{amy.id}/consents/new").status_code == 403


def test_client_voice_note_on_a_referral_goes_through_the_referral_operation(coordinator, peer,
                                                                            seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    mentoring = seeded["offers"]["Peer mentoring"]
    coordinator.post(f"/refer/{journey.id}/handover?offer={mentoring.id}", data=HANDOVER)
    referral = db.exec(select(Referral)).one()
    coordinator.post(f"/refer/drafts/{referral.id}/send", data={"version": str(referral.version)})
    added = peer.post(f"/people/{amy.id}/notes/new", data={
        "kind": "client-voice", "about": f"referral-{referral.id}", "text": "Mornings suit me"})
    assert added.status_code == 302, _error_summary(added)
    note = db.exec(select(Note)).one()
    assert note.referral_id == referral.id and note.journey_id == journey.id
    assert "Referral to Peer mentoring" in _text(coordinator.get(f"/people/{amy.id}"))


def test_flags_on_the_person_page(coordinator, seeded, db):
    amy = _person(seeded, AMY)
    _plan(coordinator, seeded, amy)
    journey = _journey(db, amy)
    from service.flags.operations import raise_flag

    raise_flag(db, trigger="concern", journey=journey, urgency="urgent", category="deterioration",
               description="Not answering the door")
    db.commit()
    html = _text(coordinator.get(f"/people/{amy.id}"))
    assert "Open flag" in html and "Not answering the door" in html and "Urgent" in html
    assert db.exec(select(Flag)).one().status == "open"
