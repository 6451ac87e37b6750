"""The whole Stepdown story through the pages, in Chromium, as each role in turn.

1. The care coordinator finds Des Clarke (a demo person), records his consent to share with
   Brent Peer Mentors, plans his journey and refers him to Peer mentoring with a handover,
   through the coordinator's refer pages (choose offer, handover, check answers, send).
2. The VCSE worker finds the new handover first in the inbox, reads it, accepts it, starts the
   support, records contacts (the contact form entirely by keyboard), and raises an URGENT
   concern (first without a category, to see the error summary).
3. The duty clinician finds the flag in the queue, acknowledges it and steps Des up.

Every page is checked with axe-core (no serious or critical violations) and screenshotted at
desktop and mobile widths (tests/artifacts/screenshots/story-*.png). The clock is the tests'
frozen clock, moved on between roles (sessions end after 30 idle minutes).
"""

from __future__ import annotations

import re

import pytest

from service.people.demo import load_demo_offers_and_people
from tests.browser.conftest import sign_in

DES = "9996000060"


@pytest.fixture
def directory(app, db, demo):
    """The demo offers and people in the live server's database."""
    with app.app_context():
        load_demo_offers_and_people(db, demo)
        db.commit()


def _follow(page, locator) -> None:
    with page.expect_navigation():
        locator.click()


def _submit(page, name: str) -> None:
    """Submit by keyboard: focus the form's button and press Enter."""
    page.get_by_role("button", name=name).focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _tab_to(page, element_id: str, most: int = 6) -> None:
    """Press Tab until the element has focus (a native date input takes a Tab per part)."""
    for _press in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def _sign_out(page) -> None:
    _follow(page, page.get_by_role("button", name="Sign out"))


def _coordinator_refers_des(page, live_server, screens) -> None:
    sign_in(page, live_server, "coordinator@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/caseload")
    _follow(page, page.get_by_role("link", name="Find a person").first)
    page.get_by_label("Find a person by NHS number").fill(DES)
    _submit(page, "Find person")
    assert page.title() == "Des Clarke – Stepdown"
    screens.check("story-coordinator-person")

    _follow(page, page.get_by_role("button", name="Record consent"))
    page.get_by_label("Organisation").select_option(label="Brent Peer Mentors")
    page.get_by_label("Verbally").check()
    page.get_by_label("UK GDPR article 6 lawful basis").select_option("public-task")
    page.get_by_label("UK GDPR article 9 condition").select_option("health-social-care")
    screens.check("story-coordinator-consent")
    _submit(page, "Record consent")
    assert "Consent recorded" in page.content()

    _follow(page, page.get_by_role("button", name="Plan a journey"))
    page.get_by_label("Named statutory contact").select_option(
        label="Casey Coordinator (Care coordinator)")
    page.get_by_label("Date of the first MDT review").fill("2027-02-01")
    page.get_by_label("Val Worker").check()
    _submit(page, "Plan journey")
    assert "Journey planned" in page.content()

    _follow(page, page.get_by_role("button", name="Refer to a community offer"))
    page.get_by_role("radio", name=re.compile(r"^Peer mentoring")).check()
    _submit(page, "Continue")
    assert page.title().startswith("Write the handover for Peer mentoring")
    page.get_by_label("What do they want from this support?").fill(
        "Get out of the flat and meet people who know the area")
    page.get_by_label("Early warning signs (optional)").fill(
        "Stops answering the phone; misses his Tuesday walk")
    page.get_by_label("Crisis plan").fill(
        "Brent crisis line 0800 000 0000; his daughter Maya knows the plan")
    page.get_by_label("Risk summary").fill("No current risk to others. Low risk to self.")
    page.get_by_label("Who to call in working hours").fill(
        "Casey Coordinator, Brent CMHT, 020 7946 0000")
    page.get_by_label("Who to call out of hours").fill("Brent crisis line, 0800 000 0000")
    screens.check("story-coordinator-handover")
    _submit(page, "Save and continue")
    assert page.title().startswith("Check your answers")
    _submit(page, "Send referral")
    assert page.title() == "Referral sent: Des Clarke – Stepdown"
    screens.check("story-coordinator-sent")
    _sign_out(page)


def _vcse_worker_accepts_and_raises_a_concern(page, live_server, screens) -> None:
    sign_in(page, live_server, "vcse@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/inbox")
    assert page.title() == "Inbox – Stepdown"
    new = page.locator("#new-referrals")
    assert new.get_by_role("link", name="Des Clarke").is_visible()
    screens.check("story-vcse-inbox")

    _follow(page, new.get_by_role("link", name="Des Clarke"))
    assert page.title() == "Des Clarke: referral to Peer mentoring – Stepdown"
    assert "About me, in Des's own words" in page.content()
    assert "his daughter Maya knows the plan" in page.content()
    screens.check("story-vcse-referral-new")

    _follow(page, page.get_by_role("button", name="Accept"))
    assert page.title() == "Accept the referral: Des Clarke – Stepdown"
    screens.check("story-vcse-accept")
    _submit(page, "Accept referral")
    assert "Referral accepted" in page.content()

    _submit(page, "Start support")
    assert "Support started" in page.content()

    # Record a contact entirely by keyboard: Tab through the form, Space to choose, type.
    _follow(page, page.get_by_role("button", name="Record a contact").first)
    assert page.title() == "Record a contact: Des Clarke – Stepdown"
    page.get_by_role("radio", name="They attended").focus()
    page.keyboard.press("Space")
    _tab_to(page, "happened_on")  # the date, already today
    _tab_to(page, "happened_time")  # past the date's day, month and year
    page.keyboard.type("10:30")
    _tab_to(page, "note")
    page.keyboard.type("Walked to the park cafe. He wants to try the Tuesday walking group.")
    screens.check("story-vcse-contact")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Save contact"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Contact recorded" in page.content()
    assert "Walked to the park cafe" in page.content()

    _follow(page, page.get_by_role("button", name="Record a contact").first)
    page.get_by_role("radio", name="They did not attend").check()
    page.get_by_label("Time").fill("10:45")
    _submit(page, "Save contact")
    page.locator("#contacts").scroll_into_view_if_needed()
    screens.check("story-vcse-referral-in-progress")

    # Raise an urgent concern: first without saying what about, to see the error summary.
    _follow(page, page.get_by_role("button", name="Raise a concern"))
    assert page.title() == "Raise a concern: Des Clarke – Stepdown"
    assert page.locator(".nhsuk-card--warning").is_visible()
    screens.check("story-vcse-concern")
    page.get_by_role("radio", name="Urgent").check()
    page.get_by_label("What happened?").fill(
        "Des says he has stopped his medication and is hearing voices again.")
    _submit(page, "Send concern")
    assert page.title().startswith("Error: Raise a concern")
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.get_by_label("What happened?").input_value().startswith("Des says")
    assert page.get_by_role("radio", name="Urgent").is_checked()
    screens.check("story-vcse-concern-errors")
    page.locator(".nhsuk-error-summary a").click()
    page.get_by_role("radio", name="Medication").check()
    _submit(page, "Send concern")
    assert page.title() == "Concern sent: Des Clarke – Stepdown"
    assert "Urgent concern about Des Clarke" in page.content()
    screens.check("story-vcse-concern-sent")
    _sign_out(page)


def _duty_clinician_acknowledges_and_steps_up(page, live_server, screens) -> None:
    sign_in(page, live_server, "duty@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/flags")
    assert page.title() == "Flags queue – Stepdown"
    # Urgent first; below it, the routine flag the referral raised itself (Des needs care
    # coordination, which Brent Peer Mentors cannot hold).
    row = page.locator("tbody tr").first
    assert row.locator(".app-tag--urgent").is_visible() and "Des Clarke" in row.inner_text()
    assert "Due in" in row.inner_text()
    assert page.locator("tbody tr").nth(1).locator(".app-tag--routine").is_visible()
    screens.check("story-duty-queue")

    _follow(page, row.get_by_role("link", name=re.compile("^Des Clarke")))
    assert page.title() == "Urgent flag: Des Clarke – Stepdown"
    assert "hearing voices again" in page.content()
    screens.check("story-duty-flag")
    page.get_by_label("Acknowledgement note (optional)").fill("Dana calling Des this afternoon")
    _submit(page, "Acknowledge")
    assert "Flag acknowledged" in page.content()
    screens.check("story-duty-flag-acknowledged")

    _follow(page, page.get_by_role("button", name="Step up"))
    assert page.title() == "Step up: Des Clarke – Stepdown"
    page.get_by_label("Note (optional)").fill("Home visit with the CMHT psychiatrist tomorrow")
    screens.check("story-duty-step-up")
    _submit(page, "Step up")
    assert "Stepped up: your team has taken the person back" in page.content()
    assert "Stepped up to our team" in page.content()
    screens.check("story-duty-stepped-up")


def test_the_whole_story(page, live_server, screens, directory, clock):
    _coordinator_refers_des(page, live_server, screens)
    clock.advance(hours=2)  # 11:00: the VCSE worker opens the inbox
    _vcse_worker_accepts_and_raises_a_concern(page, live_server, screens)
    clock.advance(minutes=20)
    _duty_clinician_acknowledges_and_steps_up(page, live_server, screens)
