"""The VCSE manager's pages on a working alliance's data (the demo journeys and referrals), in
Chromium with axe-core checks and screenshots: the inbox with an overdue new handover and a
tombstone, declining with the error summary, an EMERGENCY concern (the 999 guidance on the form
and the confirmation), assignment, a note, the offers and their capacity; then the duty
clinician sees the emergency first and resolves it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from models import Consent, Journey, Person, Referral
from service.people.demo import load_demo_offers_and_people
from service.referrals.demo import load_demo_journeys_and_referrals
from tests.browser.conftest import sign_in
from tests.test_referral_support import give_consent

DES = "9996000060"
TOMASZ = "9992000023"


@pytest.fixture
def alliance(app, db, demo, clock):
    """Demo referrals in every state; Des's new handover is past its response target; Tomasz has
    withdrawn his consent to Brent Peer Mentors (his referral there is a tombstone)."""
    with app.app_context():
        base = {**demo, **load_demo_offers_and_people(db, demo)}
        load_demo_journeys_and_referrals(db, base)
        db.commit()
        people = {p.nhs_number: p for p in db.exec(select(Person)).all()}
        des = people[DES]
        give_consent(db, demo, des, "vcse-a", clock)
        journey = db.exec(select(Journey).where(Journey.person_id == des.id)).one()
        offer = next(o for o in base["offers"].values() if o.name == "Peer mentoring")
        sent = clock.now() - timedelta(days=20)
        db.add(Referral(
            journey_id=journey.id, person_id=des.id, offer_id=offer.id,
            referring_team_id=journey.team_id, receiving_organisation_id=offer.organisation_id,
            status="requested", goals="Get out of the flat and see people",
            crisis_plan="Brent crisis line; his daughter knows the plan",
            risk_summary="Low risk", contact_in_hours="Brent CMHT 020 7946 0000",
            contact_out_of_hours="Crisis line 0800 000 0000", created_at=sent, sent_at=sent,
            updated_at=sent, about_me="My strengths\nI know every street round here."))
        tomasz = people[TOMASZ]
        for consent in db.exec(select(Consent).where(
                Consent.person_id == tomasz.id,
                Consent.organisation_id == demo["organisations"]["vcse-a"].id)).all():
            consent.withdrawn_at = clock.now() - timedelta(days=1)
            db.add(consent)
        for referral in db.exec(select(Referral).where(
                Referral.person_id == tomasz.id,
                Referral.receiving_organisation_id == demo["organisations"]["vcse-a"].id)).all():
            referral.status, referral.reason_code = "cancelled", "consent-withdrawn"
            db.add(referral)
        db.commit()


def _follow(page, locator) -> None:
    with page.expect_navigation():
        locator.click()


def _submit(page, name: str) -> None:
    page.get_by_role("button", name=name).focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_vcse_manager_and_duty_clinician_pages(page, live_server, screens, alliance):
    sign_in(page, live_server, "vcse-manager@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/inbox")
    new = page.locator("#new-referrals")
    assert new.locator(".app-tag--overdue").is_visible()
    assert page.get_by_text("Details not available").is_visible()
    screens.check("vcse-inbox-manager")

    # The overdue new handover: decline it, first without a reason.
    _follow(page, new.get_by_role("link", name="Des Clarke"))
    screens.check("vcse-referral-overdue")
    _follow(page, page.get_by_role("button", name="Decline"))
    page.get_by_label("Tell the referring team more (optional)").fill(
        "Our Tuesday walking group may suit Des better")
    _submit(page, "Decline referral")
    assert page.title().startswith("Error: Decline the referral")
    screens.check("vcse-decline-errors")
    page.get_by_role("radio", name="Returned with advice").check()
    _submit(page, "Decline referral")
    assert "Referral declined" in page.content()

    # The tombstone.
    _follow(page, page.get_by_role("link", name="Back to inbox"))
    _follow(page, page.get_by_role("link", name="Details not available").first)
    assert "The person's details are not available" in page.content()
    screens.check("vcse-tombstone")

    # Amy's referral: an EMERGENCY concern, first without saying what about.
    page.goto(f"{live_server}/inbox?status=in-progress")
    screens.check("vcse-inbox-filtered")
    _follow(page, page.get_by_role("link", name="Amy Okafor"))
    _follow(page, page.get_by_role("button", name="Raise a concern"))
    page.get_by_role("radio", name="Emergency").check()
    page.get_by_label("What happened?").fill("Amy called me and said she is not safe tonight.")
    _submit(page, "Send concern")
    assert page.locator(".nhsuk-card--care--emergency").is_visible()
    screens.check("vcse-concern-emergency-errors")
    page.get_by_role("radio", name="Risk to themselves").check()
    _submit(page, "Send concern")
    assert page.locator(".nhsuk-card--care--emergency").is_visible()
    assert "Call 999 or the crisis line now" in page.content()
    screens.check("vcse-concern-emergency-sent")

    # Assign, and a note in Amy's own words.
    _follow(page, page.get_by_role("link", name="Go back to Amy Okafor's referral"))
    _follow(page, page.get_by_role("link", name="Change assigned to"))
    page.get_by_label("Who will work with Amy Okafor?").select_option(
        label="Morgan Manager (VCSE manager)")
    screens.check("vcse-assign")
    _submit(page, "Save")
    assert "Referral assigned" in page.content()
    _follow(page, page.get_by_role("button", name="Add a note"))
    page.get_by_role("radio", name="In Amy's own words").check()
    page.get_by_label("Write the note").fill("I'd like to keep meeting at the cafe, not at home.")
    screens.check("vcse-add-note")
    _submit(page, "Add note")
    page.locator("#notes").scroll_into_view_if_needed()
    screens.check("vcse-referral-with-note")

    # Offers: change capacity, with a mistake first.
    _follow(page, page.get_by_role("link", name="Offers").first)
    screens.check("vcse-offers")
    _follow(page, page.get_by_role("link", name="Change Peer mentoring"))
    page.get_by_role("radio", name="Waiting list").check()
    page.get_by_label("Waiting time in weeks (optional)").fill("six")
    _submit(page, "Save changes")
    assert page.title().startswith("Error: Change Peer mentoring")
    screens.check("vcse-offer-errors")
    page.get_by_label("Waiting time in weeks (optional)").fill("6")
    _submit(page, "Save changes")
    assert "Offer updated" in page.content()
    _follow(page, page.get_by_role("button", name="Sign out"))

    # The duty clinician sees the emergency first and resolves it.
    sign_in(page, live_server, "duty@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/flags")
    first = page.locator("tbody tr").first
    assert first.locator(".app-tag--emergency").is_visible() and "Amy Okafor" in first.inner_text()
    screens.check("duty-queue-emergency")
    _follow(page, first.get_by_role("link", name=re.compile("^Amy Okafor")))
    screens.check("duty-flag-emergency")
    _follow(page, page.get_by_role("button", name="Resolve"))
    _submit(page, "Resolve flag")
    assert page.title().startswith("Error: Resolve the flag")
    screens.check("duty-resolve-errors")
    page.get_by_role("radio", name="Advice given").check()
    page.get_by_label("Note (optional)").fill("Crisis team visited Amy tonight; safe plan agreed.")
    _submit(page, "Resolve flag")
    assert "Flag resolved" in page.content()
    screens.check("duty-flag-resolved")
