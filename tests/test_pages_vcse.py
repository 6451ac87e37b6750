"""VCSE worker and manager pages: the inbox, the referral page (handover, timeline, contacts,
notes, tombstone), the lifecycle actions, contacts, notes, concerns, assignment and offers.

The pages call the same operations as the API. A form with problems is shown again (422) with
the NHS.UK error summary, inline messages and what was typed, and writes nothing; a stale form
(hidden version) says the referral changed and shows the latest (409); success redirects.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from sqlmodel import select

from models import Contact, Flag, Journey, Note, Offer, Referral, ReferralEvent
from tests.test_referral_support import (
    act,
    give_consent,
    make_journey,
    make_person,
    ok,
    referral_row,
    sent_referral,
)
from tests.test_referral_support import world as _world_fixture
from tests.test_security_headers import _forget_previous_principal

world = _world_fixture


def _text(response) -> str:
    return response.get_data(as_text=True)


def _plain(response) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>|\s+", " ", _text(response)))


def _title(response) -> str:
    return html_lib.unescape(re.search(r"<title>(.*?)</title>", _text(response), re.S)
                             .group(1).strip())


def _error_summary(response) -> list[str]:
    html = _text(response)
    assert 'class="nhsuk-error-summary"' in html, html[:3000]
    block = html.split('nhsuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]
    return [html_lib.unescape(re.sub(r"<[^>]+>|\s+", " ", m)).strip()
            for m in re.findall(r"<li>(.*?)</li>", block, re.S)]


def _version(db, referral_id: int) -> str:
    return str(referral_row(db, referral_id).version)


def _events(db, referral_id: int) -> list[str]:
    db.expire_all()
    return [e.action for e in db.exec(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral_id).order_by(ReferralEvent.id)).all()]


@pytest.fixture
def sent(world) -> int:
    return sent_referral(world)


def _accepted(world, referral_id: int) -> None:
    ok(act(world.vcse, referral_id, "accept", {}))


def _started(world, referral_id: int) -> None:
    _accepted(world, referral_id)
    ok(act(world.vcse, referral_id, "start"))


# --- who sees what ----------------------------------------------------------------------------

def test_home_is_the_inbox_for_vcse_roles_with_the_right_navigation(world):
    response = world.vcse.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    page = world.vcse.get("/inbox")
    assert page.status_code == 200 and _title(page) == "Inbox – Stepdown"
    assert 'href="/inbox"' in _text(page) and 'href="/offers"' not in _text(page)
    manager = world.manager.get("/inbox")
    assert 'href="/offers"' in _text(manager)


def test_statutory_and_anonymous_callers_do_not_get_vcse_pages(world, client, sent):
    assert world.coordinator.get("/inbox").status_code == 403
    assert world.duty.get("/inbox").status_code == 403
    assert world.coordinator.get(f"/referrals/{sent}/accept").status_code == 403
    assert world.vcse.get("/offers").status_code == 403  # managers only
    assert world.vcse.get(f"/referrals/{sent}/assign").status_code == 403
    anonymous = client.get("/inbox")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert client.post(f"/referrals/{sent}/accept").status_code == 401


def test_another_organisation_gets_404_and_a_statutory_reader_goes_to_the_person(world, sent):
    assert world.vcse_b.get(f"/referrals/{sent}").status_code == 404
    assert world.vcse_b.post(f"/referrals/{sent}/accept", data={"version": "1"}).status_code == 404
    assert world.vcse.get("/referrals/999999").status_code == 404
    _forget_previous_principal()
    assert world.vcse.get("/referrals/99999999999").status_code == 404  # beyond 32 bits
    response = world.coordinator.get(f"/referrals/{sent}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/people/{world.person.id}#referrals")


# --- the inbox --------------------------------------------------------------------------------

def _requested(w, n: int, *, minutes_ago: int = 0, offer: Offer | None = None) -> int:
    """A sent referral of a new person (arranged with the models, like test_inbox)."""
    person = make_person(w.db, w.demo, seed=200 + n, given=f"Person{n}")
    person.preferred_name = None
    give_consent(w.db, w.demo, person, "vcse-a", w.clock)
    journey = make_journey(w.db, w.demo, person, w.clock)
    offer = offer or w.offer
    at = w.clock.now() - timedelta(minutes=minutes_ago)
    referral = Referral(journey_id=journey.id, person_id=person.id, offer_id=offer.id,
                        referring_team_id=journey.team_id,
                        receiving_organisation_id=offer.organisation_id, status="requested",
                        goals="g", crisis_plan="c", risk_summary="r", contact_in_hours="i",
                        contact_out_of_hours="o", created_at=at, sent_at=at, updated_at=at)
    w.db.add(referral)
    w.db.commit()
    return referral.id


def test_inbox_lists_new_handovers_first_and_marks_overdue_ones(world, sent):
    _started(world, sent)
    fresh = _requested(world, 1)
    world.later(days=1)
    older_but_new = _requested(world, 2, minutes_ago=60 * 24 * 20)  # 20 days: past 5 working days
    page = world.vcse.get("/inbox")
    html = _text(page)
    new_section, other_section = html.split('id="referrals"', 1)
    assert "Person1 Okafor" in new_section and "Person2 Okafor" in new_section
    assert "Amy Okafor" in other_section and "Amy Okafor" not in new_section
    # Newest first; the overdue one is tagged and its row highlighted.
    assert new_section.index("Person1") < new_section.index("Person2")
    row = new_section.split(f"/referrals/{older_but_new}")[1].split("</tr>")[0]
    assert "Overdue" in row and "Reply was due by" in row
    fresh_row = new_section.split(f"/referrals/{fresh}")[1].split("</tr>")[0]
    assert "Overdue" not in fresh_row and "Reply due by" in fresh_row
    assert "app-row--overdue" in html
    assert "In progress" in other_section


def test_inbox_filters_by_status_offer_and_assignee_and_ignores_bad_values(world, sent):
    second = Offer(organisation_id=world.offer.organisation_id, name="Peer coaching",
                   description="x")
    world.db.add(second)
    world.db.commit()
    other = _requested(world, 3, offer=second)
    _accepted(world, sent)
    only_new = _plain(world.vcse.get("/inbox?status=requested"))
    assert "Person3 Okafor" in only_new and "Amy Okafor" not in only_new
    by_offer = _plain(world.vcse.get(f"/inbox?offer={second.id}"))
    assert "Person3 Okafor" in by_offer and "Amy Okafor" not in by_offer
    accepted = _plain(world.vcse.get("/inbox?status=accepted"))
    assert "Amy Okafor" in accepted and "Person3" not in accepted
    assert "Inbox (filtered)" in accepted
    nobody = _plain(world.vcse.get("/inbox?assignee=me"))
    assert "No new handovers match these filters" in nobody
    assert "No other referrals match these filters yet" in nobody
    for bad in ("status=sideways", "offer=abc", "offer=99999999999", "assignee=x",
                "cursor=%%%", "cursor=bm90LWEtY3Vyc29y"):
        response = world.vcse.get(f"/inbox?{bad}")
        assert response.status_code in (200, 302), bad
    assert other


def test_inbox_pages_with_a_cursor(world):
    for n in range(25):
        _requested(world, 10 + n, minutes_ago=n)
    first = world.vcse.get("/inbox?status=requested")
    html = _text(first)
    assert html.count('class="app-inbox__name"') == 20
    next_href = html_lib.unescape(re.search(r'href="([^"]*cursor=[^"]*)"', html).group(1))
    second = world.vcse.get(next_href)
    assert _text(second).count('class="app-inbox__name"') == 5
    assert _title(second) == "Inbox (filtered) (more referrals) – Stepdown"


# --- the referral page ------------------------------------------------------------------------

def test_referral_page_shows_the_handover_as_a_readable_summary(world, sent):
    response = world.vcse.get(f"/referrals/{sent}")
    assert response.status_code == 200
    assert _title(response) == "Amy Okafor: referral to Peer mentoring – Stepdown"
    text = _plain(response)
    for expected in ("About me, in Amy's own words", "My strengths", "I'm a good cook.",
                     "What matters to me", "My daughter.", "Meet people locally",
                     "Stops answering texts", "Call the crisis line; sister is the first",
                     "No current risk to others", "Who to call", "In working hours",
                     "Casey Coordinator, Brent CMHT", "Out of hours", "Crisis line 0800 000 0000",
                     "Why we can share this", "Peer support", "Text before calling",
                     "Referral received from Brent Community Mental Health Team",
                     "Reply due by", "No contacts recorded yet", "No notes yet",
                     "Download the handover pack (PDF)"):
        assert expected in text, expected
    assert "nhs_number" not in text and world.person.nhs_number not in text
    assert f'action="/referrals/{sent}/start"' not in _text(response)
    assert f"/referrals/{sent}/accept" in _text(response)


def test_tombstone_after_consent_withdrawal(world, sent):
    ok(world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                              json={"reason": "The person asked us to stop sharing"}))
    response = world.vcse.get(f"/referrals/{sent}")
    assert response.status_code == 200
    text = _plain(response)
    assert "The person's details are not available" in text
    assert "Consent withdrawn on 4 January 2027" in text
    assert "Amy" not in text and "crisis" not in text.lower().replace("crisis line", "")
    inbox = _plain(world.vcse.get("/inbox"))
    assert "Details not available" in inbox and "Amy Okafor" not in inbox
    # Forms on a tombstone go back to it, and write nothing.
    response = world.vcse.post(f"/referrals/{sent}/contacts/new", data={"outcome": "attended"})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/referrals/{sent}")


# --- accept and decline -----------------------------------------------------------------------

def test_accept_on_the_waiting_list_needs_a_start_date_and_keeps_what_was_typed(world, sent):
    form = world.vcse.get(f"/referrals/{sent}/accept")
    assert form.status_code == 200 and _title(form) == "Accept the referral: Amy Okafor – Stepdown"
    version = _version(world.db, sent)
    response = world.vcse.post(f"/referrals/{sent}/accept",
                               data={"waitlist": "true", "version": version})
    assert response.status_code == 422
    assert _title(response).startswith("Error: Accept the referral")
    assert _error_summary(response) == ["Enter the expected start date"]
    assert 'value="true"\n        checked' in _text(response) or \
        re.search(r'value="true"\s+checked', _text(response))
    assert referral_row(world.db, sent).status == "requested"
    assert _events(world.db, sent) == ["create", "send"]
    bad = world.vcse.post(f"/referrals/{sent}/accept",
                          data={"waitlist": "true", "expected_start": "2027-02-30",
                                "version": version})
    assert bad.status_code == 422 and "2027-02-30" in _text(bad)
    response = world.vcse.post(f"/referrals/{sent}/accept",
                               data={"waitlist": "true", "expected_start": "2027-02-01",
                                     "version": version})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/referrals/{sent}")
    row = referral_row(world.db, sent)
    assert row.status == "accepted" and row.waitlist and str(row.expected_start) == "2027-02-01"
    page = world.vcse.get(f"/referrals/{sent}")
    assert "Referral accepted" in _plain(page)
    assert "Expected to start 1 February 2027" in _plain(page)


def test_decline_needs_a_coded_reason_and_raises_a_flag_when_specialist_support(world, sent):
    version = _version(world.db, sent)
    form = world.vcse.get(f"/referrals/{sent}/decline")
    assert "Needs specialist support" in _plain(form) and 'type="radio"' in _text(form)
    response = world.vcse.post(f"/referrals/{sent}/decline",
                               data={"reason_text": "Hearing voices more", "version": version})
    assert response.status_code == 422
    assert _error_summary(response) == ["Select a reason"]
    assert "Hearing voices more" in _text(response)
    assert referral_row(world.db, sent).status == "requested"
    response = world.vcse.post(f"/referrals/{sent}/decline", data={
        "reason_code": "needs-specialist-support", "reason_text": "Hearing voices more",
        "version": version})
    assert response.status_code == 302
    row = referral_row(world.db, sent)
    assert row.status == "rejected" and row.reason_code == "needs-specialist-support"
    flags = world.db.exec(select(Flag).where(Flag.referral_id == sent)).all()
    assert [f.trigger for f in flags] == ["declined-needs-specialist"]
    assert "You cannot do this now" in _plain(world.vcse.get(f"/referrals/{sent}/accept"))


def test_a_stale_form_says_the_referral_changed_and_shows_the_latest(world, sent):
    stale = _version(world.db, sent)
    ok(act(world.vcse, sent, "accept", {}))  # someone else accepted it meanwhile
    response = world.vcse.post(f"/referrals/{sent}/decline", data={
        "reason_code": "no-capacity", "reason_text": "Full until March", "version": stale})
    assert response.status_code == 409
    assert _error_summary(response) == [
        "This referral changed while you were working on it. Here is the latest: check it, "
        "then try again."]
    assert "You cannot do this now: the referral is accepted" in _plain(response)
    assert referral_row(world.db, sent).status == "accepted"
    # A stale start (the version before a hold) is refused the same way, never a 500.
    response = world.vcse.post(f"/referrals/{sent}/start", data={"version": stale})
    assert response.status_code == 409
    response = world.vcse.post(f"/referrals/{sent}/start", data={"version": "not-a-number"})
    assert response.status_code == 409


def test_start_hold_resume_and_complete_through_the_pages(world, sent):
    _accepted(world, sent)
    page = world.vcse.get(f"/referrals/{sent}")
    assert f'action="/referrals/{sent}/start"' in _text(page)
    response = world.vcse.post(f"/referrals/{sent}/start",
                               data={"version": _version(world.db, sent)})
    assert response.status_code == 302 and referral_row(world.db, sent).status == "in-progress"
    response = world.vcse.post(f"/referrals/{sent}/hold", data={
        "reason_code": "on-a-boat", "version": _version(world.db, sent)})
    assert response.status_code == 422 and _error_summary(response) == ["Select a reason"]
    response = world.vcse.post(f"/referrals/{sent}/hold", data={
        "reason_code": "person-unwell", "version": _version(world.db, sent)})
    assert response.status_code == 302 and referral_row(world.db, sent).status == "on-hold"
    assert "The person is unwell" in _plain(world.vcse.get(f"/referrals/{sent}"))
    world.vcse.post(f"/referrals/{sent}/resume", data={"version": _version(world.db, sent)})
    assert referral_row(world.db, sent).status == "in-progress"
    response = world.vcse.post(f"/referrals/{sent}/complete",
                               data={"version": _version(world.db, sent)})
    assert response.status_code == 302 and referral_row(world.db, sent).status == "completed"
    assert _events(world.db, sent)[2:] == ["accept", "start", "hold", "resume", "complete"]


def test_could_not_engage_closes_with_a_reason(world, sent):
    _started(world, sent)
    response = world.vcse.post(f"/referrals/{sent}/fail", data={
        "reason_code": "could-not-engage", "reason_text": "No reply for six weeks",
        "version": _version(world.db, sent)})
    assert response.status_code == 302
    row = referral_row(world.db, sent)
    assert row.status == "failed" and row.reason_text == "No reply for six weeks"


# --- contacts and notes -----------------------------------------------------------------------

def test_record_a_contact_validates_and_keeps_what_was_typed(world, sent):
    closed = world.vcse.get(f"/referrals/{sent}/contacts/new")
    assert "Contacts are recorded once the referral is accepted" in _plain(closed)
    _started(world, sent)
    world.later(hours=2)  # 11:00
    form = world.vcse.get(f"/referrals/{sent}/contacts/new")
    assert _title(form) == "Record a contact: Amy Okafor – Stepdown"
    assert 'value="2027-01-04"' in _text(form)
    response = world.vcse.post(f"/referrals/{sent}/contacts/new", data={
        "happened_on": "2027-01-04", "happened_time": "25:99", "note": "Coffee at the cafe"})
    assert response.status_code == 422
    assert _error_summary(response) == ["Select what happened",
                                        "Enter the time of the contact, for example 14:30"]
    assert "Coffee at the cafe" in _text(response) and "25:99" in _text(response)
    future = world.vcse.post(f"/referrals/{sent}/contacts/new", data={
        "outcome": "attended", "happened_on": "2027-01-05", "happened_time": "10:00"})
    assert future.status_code == 422 and _error_summary(future) == ["Enter a time that has passed"]
    assert world.db.exec(select(Contact).where(Contact.referral_id == sent)).all() == []
    response = world.vcse.post(f"/referrals/{sent}/contacts/new", data={
        "outcome": "attended", "happened_on": "2027-01-04", "happened_time": "10.30",
        "note": "Coffee at the cafe"})
    assert response.status_code == 302 and response.headers["Location"].endswith("#contacts")
    contact = world.db.exec(select(Contact).where(Contact.referral_id == sent)).one()
    assert contact.outcome == "attended" and contact.note == "Coffee at the cafe"
    assert contact.happened_at.hour == 10 and contact.happened_at.minute == 30  # GMT in January
    page = _plain(world.vcse.get(f"/referrals/{sent}"))
    assert "Attended" in page and "Coffee at the cafe" in page and "recorded by Val Worker" in page


def test_add_a_note_or_the_persons_own_words(world, sent):
    response = world.vcse.post(f"/referrals/{sent}/notes/new", data={"kind": "client-voice"})
    assert response.status_code == 422 and _error_summary(response) == ["Enter the note"]
    assert world.db.exec(select(Note)).all() == []
    response = world.vcse.post(f"/referrals/{sent}/notes/new", data={
        "kind": "client-voice", "text": "I want a mentor who gets it."})
    assert response.status_code == 302
    note = world.db.exec(select(Note)).one()
    assert note.kind == "client-voice" and note.author_role == "vcse_worker"
    page = _plain(world.vcse.get(f"/referrals/{sent}"))
    assert "In their own words" in page and "I want a mentor who gets it." in page
    assert "Val Worker, VCSE worker (Brent Peer Mentors)" in page


# --- raise a concern --------------------------------------------------------------------------

def test_raise_a_concern_shows_the_emergency_guidance_and_raises_a_flag(world, sent):
    form = world.vcse.get(f"/referrals/{sent}/concern")
    assert _title(form) == "Raise a concern: Amy Okafor – Stepdown"
    assert "nhsuk-card--warning" in _text(form)
    assert "If someone is in immediate danger, call 999" in _plain(form)
    response = world.vcse.post(f"/referrals/{sent}/concern", data={
        "urgency": "emergency", "description": "Said they have a plan to end their life"})
    assert response.status_code == 422
    assert _error_summary(response) == ["Select what the concern is about"]
    # Emergency chosen: the guidance is the emergency care card at the top of the form.
    assert "nhsuk-card--care--emergency" in _text(response)
    assert "Call 999 or the crisis line now" in _plain(response)
    assert "Said they have a plan to end their life" in _text(response)
    assert world.db.exec(select(Flag)).all() == []
    response = world.vcse.post(f"/referrals/{sent}/concern", data={
        "category": "risk-to-self", "urgency": "emergency",
        "description": "Said they have a plan to end their life"})
    assert response.status_code == 302
    flag = world.db.exec(select(Flag)).one()
    assert (flag.trigger, flag.category, flag.urgency) == ("concern", "risk-to-self", "emergency")
    done = world.vcse.get(response.headers["Location"])
    assert _title(done) == "Concern sent: Amy Okafor – Stepdown"
    text = _plain(done)
    assert "nhsuk-card--care--emergency" in _text(done)
    assert "call 999 or the crisis line now" in text.lower()
    assert "Crisis line 0800 000 0000" in text  # who to call, from the handover
    # The same concern again is added to the open flag.
    again = world.vcse.post(f"/referrals/{sent}/concern", data={
        "category": "risk-to-self", "urgency": "urgent"})
    assert "Concern added" in _plain(world.vcse.get(again.headers["Location"]))
    assert len(world.db.exec(select(Flag)).all()) == 1


def test_an_urgent_concern_has_no_emergency_card_on_the_confirmation(world, sent):
    response = world.vcse.post(f"/referrals/{sent}/concern", data={
        "category": "deterioration", "urgency": "urgent", "description": "Not sleeping"})
    done = world.vcse.get(response.headers["Location"])
    assert "nhsuk-card--care--emergency" not in _text(done)
    assert "Urgent concern about Amy Okafor" in _plain(done)
    assert "4 working hours" in _plain(done)


# --- managers: assignment and offers ----------------------------------------------------------

def test_a_manager_assigns_a_referral_to_a_worker(world, sent):
    val = world.demo["users"]["vcse@demo.stepdown.test"]
    riley = world.demo["users"]["vcse-b@demo.stepdown.test"]
    form = world.manager.get(f"/referrals/{sent}/assign")
    assert "Val Worker (VCSE worker)" in _text(form) and "Riley" not in _text(form)
    version = _version(world.db, sent)
    response = world.manager.post(f"/referrals/{sent}/assign", data={"version": version})
    assert response.status_code == 422 and _error_summary(response) == ["Select a worker"]
    response = world.manager.post(f"/referrals/{sent}/assign",
                                  data={"user_id": str(riley.id), "version": version})
    assert response.status_code == 422
    assert _error_summary(response) == ["Choose a worker of your organisation"]
    response = world.manager.post(f"/referrals/{sent}/assign",
                                  data={"user_id": str(val.id), "version": version})
    assert response.status_code == 302
    assert referral_row(world.db, sent).assigned_to_user_id == val.id
    stale = world.manager.post(f"/referrals/{sent}/assign",
                               data={"user_id": "none", "version": version})
    assert stale.status_code == 409
    assert referral_row(world.db, sent).assigned_to_user_id == val.id
    mine = _plain(world.vcse.get("/inbox?assignee=me"))
    assert "Amy Okafor" in mine


def test_a_manager_changes_an_offers_capacity_and_status(world):
    offer = world.offer
    version = str(offer.version)
    page = world.manager.get("/offers")
    assert page.status_code == 200 and _title(page) == "Your offers – Stepdown"
    assert "Peer mentoring" in _plain(page) and "Community Resilience" not in _plain(page)
    form = world.manager.get(f"/offers/{offer.id}/edit")
    assert _title(form) == "Change Peer mentoring – Stepdown"
    response = world.manager.post(f"/offers/{offer.id}/edit", data={
        "capacity": "waitlist", "waitlist_weeks": "six", "status": "active",
        "response_target_days": "5", "version": version})
    assert response.status_code == 422
    assert _error_summary(response) == [
        "Enter the waiting time as a number of weeks from 0 to 104"]
    assert 'value="six"' in _text(response)
    response = world.manager.post(f"/offers/{offer.id}/edit", data={
        "capacity": "waitlist", "waitlist_weeks": "6", "status": "temporarily closed",
        "response_target_days": "3", "version": version})
    assert response.status_code == 302
    world.db.expire_all()
    changed = world.db.get(Offer, offer.id)
    assert (changed.capacity, changed.waitlist_weeks, changed.status,
            changed.response_target_days) == ("waitlist", 6, "temporarily closed", 3)
    stale = world.manager.post(f"/offers/{offer.id}/edit", data={
        "capacity": "capacity", "status": "active", "response_target_days": "5",
        "version": version})
    assert stale.status_code == 409 and "This offer changed" in _plain(stale)
    other = world.other_offer
    assert world.manager.get(f"/offers/{other.id}/edit").status_code == 404
    _forget_previous_principal()
    assert world.manager.get("/offers/99999999999/edit").status_code == 404


def test_no_form_answers_garbage_with_a_500(world, sent):
    garbage = {"version": "x" * 50, "waitlist": "maybe", "expected_start": "yesterday",
               "reason_code": "<script>", "reason_text": "x" * 5000, "outcome": "??",
               "happened_on": "31/31/31", "happened_time": "noon", "kind": "poem",
               "text": "y" * 9000, "category": "vibes", "urgency": "now", "user_id": "-1",
               "capacity": "lots", "status": "open", "response_target_days": "-3"}
    urls = [f"/referrals/{sent}/{a}" for a in ("accept", "decline", "start", "hold", "resume",
                                               "complete", "fail")]
    urls += [f"/referrals/{sent}/contacts/new", f"/referrals/{sent}/notes/new",
             f"/referrals/{sent}/concern", f"/referrals/{sent}/assign",
             f"/offers/{world.offer.id}/edit"]
    for url in urls:
        response = world.manager.post(url, data=garbage)
        assert response.status_code in (409, 422), (url, response.status_code)
        assert "<script>" not in _text(response)
    assert referral_row(world.db, sent).status == "requested"
    assert world.db.exec(select(Journey)).one().status == "planned"


def test_contacts_and_notes_on_the_referral_page_are_paginated(world, sent):
    _started(world, sent)
    start = world.clock.now()
    for n in range(12):
        world.db.add(Contact(referral_id=sent, outcome="attended", note=f"Meeting {n:02d}",
                             happened_at=start + timedelta(minutes=n), created_at=start))
    world.db.commit()
    world.later(hours=1)
    page = _text(world.vcse.get(f"/referrals/{sent}"))
    # Each list's pages are their own named landmark (screen readers list them apart).
    assert 'aria-label="Contacts pages"' in page and 'aria-label="Pagination"' not in page
    first = _plain(world.vcse.get(f"/referrals/{sent}"))
    assert "Contacts (12)" in first and "Meeting 11" in first and "Meeting 01" not in first
    second = _plain(world.vcse.get(f"/referrals/{sent}?contacts_page=2"))
    assert "Meeting 01" in second and "Meeting 11" not in second
    assert world.vcse.get(f"/referrals/{sent}?contacts_page=999&notes_page=x").status_code == 200
