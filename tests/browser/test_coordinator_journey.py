"""The care coordinator's walk in a real browser, by keyboard where practical: find and register a
person, record consent for Brent Peer Mentors, plan a journey, refer with a handover through
every step and send it. Every page is checked with axe-core and screenshotted (desktop, mobile).
"""

from __future__ import annotations

import re

import pytest

from service.people.demo import load_demo_offers_and_people
from tests.browser.conftest import sign_in

NEW_NHS_NUMBER = "943 476 5919"


@pytest.fixture
def directory(app, db, demo):
    """The demo offers (and demo people) in the live server's database."""
    with app.app_context():
        load_demo_offers_and_people(db, demo)
        db.commit()


def _type_into(page, label: str, text: str, *, exact: bool = False) -> None:
    page.get_by_label(label, exact=exact).focus()
    page.keyboard.type(text)


def _submit(page, name: str) -> None:
    """Submit the form by keyboard: focus its button and press Enter."""
    page.get_by_role("button", name=name).focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _follow(page, locator) -> None:
    """Follow a link (or a link styled as a button) and wait for the next page."""
    with page.expect_navigation():
        locator.click()


def test_coordinator_registers_consents_plans_and_refers(page, live_server, screens, directory):
    sign_in(page, live_server, "coordinator@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/caseload")
    assert page.title() == "My caseload – Stepdown"
    screens.check("caseload-empty")

    # Find a person by NHS number: not registered yet, so we are offered the register form.
    _follow(page, page.get_by_role("link", name="Find a person").first)
    assert page.title() == "Find a person – Stepdown"
    screens.check("find-person")
    _type_into(page, "Find a person by NHS number", NEW_NHS_NUMBER)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.title() == "Register a new person – Stepdown"
    assert "9434765919" not in page.url  # the number never goes in a URL
    assert page.get_by_label("NHS number").input_value() == "9434765919"

    # Register: first with a mistake, to see the error summary; what was typed is kept.
    _type_into(page, "First name", "Sam")
    _submit(page, "Register person")
    assert page.title().startswith("Error: Register a new person")
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.get_by_label("First name").input_value() == "Sam"
    screens.check("register-person-errors")
    page.locator(".nhsuk-error-summary a", has_text="Enter their last name").click()
    page.keyboard.type("Jones")
    _type_into(page, "Preferred name (optional)", "Sammy")
    _type_into(page, "Pronouns (optional)", "they/them")
    page.get_by_label("Date of birth").fill("1990-05-01")
    _type_into(page, "Postcode district (optional)", "NW10")
    _type_into(page, "Borough (optional)", "Brent")
    for need in ("Peer support", "Social connection"):
        page.get_by_label(need, exact=True).focus()
        page.keyboard.press("Space")
    screens.check("register-person")
    _submit(page, "Register person")
    assert page.title() == "Sammy Jones – Stepdown"
    assert "Person registered" in page.content()
    screens.check("person-new")

    # About me, in their own words.
    _follow(page, page.get_by_role("link", name="Change About me"))
    assert page.title() == "About me: Sammy Jones – Stepdown"
    _type_into(page, "My strengths", "I'm good at fixing bikes and I make people laugh.")
    _type_into(page, "What matters to me", "My nan, and getting back to football.")
    _type_into(page, "What helps me", "Text me first. Meet me outside, not in a clinic.")
    screens.check("about-me")
    _submit(page, "Save About me")
    assert "About me updated" in page.content()

    # Record consent to share with Brent Peer Mentors.
    _follow(page, page.get_by_role("button", name="Record consent"))
    assert page.title() == "Record consent: Sammy Jones – Stepdown"
    page.get_by_label("Organisation").select_option(label="Brent Peer Mentors")
    page.get_by_label("Verbally").focus()
    page.keyboard.press("Space")
    page.get_by_label("UK GDPR article 6 lawful basis").select_option("public-task")
    page.get_by_label("UK GDPR article 9 condition").select_option("health-social-care")
    screens.check("record-consent")
    _submit(page, "Record consent")
    assert "Consent recorded" in page.content()
    assert page.locator("#consents ~ .nhsuk-card", has_text="Brent Peer Mentors").count() == 1

    # Plan the journey: named statutory contact, review date, MDT.
    _follow(page, page.get_by_role("button", name="Plan a journey"))
    assert page.title() == "Plan a journey: Sammy Jones – Stepdown"
    page.get_by_label("Named statutory contact").select_option(label="Casey Coordinator (Care coordinator)")
    page.get_by_label("Date of the first MDT review").fill("2027-02-01")
    page.get_by_label("Pat Peer").focus()
    page.keyboard.press("Space")
    page.get_by_label("Val Worker").focus()
    page.keyboard.press("Space")
    screens.check("plan-journey")
    _submit(page, "Plan journey")
    assert "Journey planned" in page.content()
    screens.check("person-with-journey")

    # Refer (1): choose an offer from the filtered directory.
    _follow(page, page.get_by_role("button", name="Refer to a community offer"))
    assert page.title() == "Choose a community offer: Sammy Jones – Stepdown"
    assert page.get_by_text("Has capacity").count() >= 1
    screens.check("refer-choose-offer")
    page.get_by_role("radio", name=re.compile(r"^Peer mentoring")).focus()
    page.keyboard.press("Space")
    _submit(page, "Continue")

    # Refer (2): the handover, with the error summary first.
    assert page.title() == "Write the handover for Peer mentoring: Sammy Jones – Stepdown"
    _type_into(page, "What do they want from this support?", "Meet people nearby who get it")
    _submit(page, "Save and continue")
    assert page.title().startswith("Error: ")
    assert page.get_by_label("What do they want from this support?").input_value() == \
        "Meet people nearby who get it"
    screens.check("refer-handover-errors")
    _type_into(page, "Early warning signs (optional)", "Stops replying to texts")
    _type_into(page, "Crisis plan", "Call the Brent crisis line; their nan knows the plan")
    _type_into(page, "Risk summary", "No current risk to others")
    _type_into(page, "Who to call in working hours", "Casey Coordinator, 020 7946 0000")
    _type_into(page, "Who to call out of hours", "Brent crisis line, 0800 000 0000")
    screens.check("refer-handover")
    _submit(page, "Save and continue")

    # Refer (3): check your answers, change one, and (4) send.
    assert page.title() == "Check your answers before sending the referral: Sammy Jones – Stepdown"
    screens.check("refer-check")
    _follow(page, page.get_by_role("link", name="Change risk summary"))
    page.get_by_label("Risk summary").fill("No current risk to others or to self")
    _submit(page, "Save and continue")
    assert "No current risk to others or to self" in page.content()
    _submit(page, "Send referral")
    assert page.title() == "Referral sent: Sammy Jones – Stepdown"
    assert page.locator(".nhsuk-panel").is_visible()
    screens.check("refer-sent")

    _follow(page, page.get_by_role("link", name="Go to Sammy Jones's record"))
    assert "Sent, awaiting reply" in page.content()
    screens.check("person-after-referral")
    _follow(page, page.get_by_role("link", name="My caseload").first)
    assert page.get_by_text("Awaiting reply").count() >= 1
    screens.check("caseload")


def test_peer_worker_records_about_me_and_client_voice(page, live_server, screens, directory,
                                                       app, db, demo):
    from sqlmodel import select

    from models import Journey, Person

    with app.app_context():
        amy = db.exec(select(Person).where(Person.nhs_number == "9991000011")).one()
        db.add(Journey(person_id=amy.id, team_id=demo["teams"][
            "Brent Community Mental Health Team"].id, status="active",
            statutory_contact_user_id=demo["users"]["coordinator@demo.stepdown.test"].id))
        db.commit()
    sign_in(page, live_server, "peer@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/caseload")
    screens.check("caseload-peer")
    _follow(page, page.get_by_role("link", name="Amy Okafor"))
    assert page.title() == "Amy Okafor – Stepdown"
    screens.check("person-peer")
    _follow(page, page.get_by_role("link", name="Change About me"))
    page.get_by_label("What helps me").fill("Text me first. Mornings are best.")
    _submit(page, "Save About me")
    assert "Last updated by Pat Peer, Peer worker" in page.content()
    _follow(page, page.get_by_role("button", name="Add a note"))
    assert page.title() == "Add a note: Amy Okafor – Stepdown"
    _type_into(page, "Write the note", "I want someone who has been through it, not another professional.",
               exact=True)
    screens.check("add-note")
    _submit(page, "Add note")
    assert page.locator(".app-note--client-voice").count() == 1
    assert "Pat Peer, Peer worker" in page.content()
    page.locator("#notes").scroll_into_view_if_needed()
    screens.check("person-client-voice")
