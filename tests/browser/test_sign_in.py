"""Signing in and out in a real browser, by keyboard, with accessibility checks."""

from __future__ import annotations

from tests.browser.conftest import sign_in


def test_sign_in_page_is_accessible_and_shows_errors(page, live_server, screens):
    page.goto(f"{live_server}/login")
    assert page.title().startswith("Sign in")
    screens.check("sign-in")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.title().startswith("Error:")
    screens.check("sign-in-errors", mobile=False)


def test_sign_in_by_keyboard_alone(page, live_server):
    page.goto(f"{live_server}/login")
    page.keyboard.press("Tab")  # skip link first
    assert page.evaluate("document.activeElement.textContent").strip().lower().startswith("skip")
    page.get_by_label("Email address").focus()
    page.keyboard.type("coordinator@demo.stepdown.test")
    page.keyboard.press("Tab")
    page.keyboard.type("stepdown-demo")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/caseload")  # a care coordinator's home is the caseload
    assert "Casey Coordinator" in page.content()


def test_signed_in_home_and_sign_out(page, live_server, screens):
    sign_in(page, live_server, "coordinator@demo.stepdown.test")
    page.wait_for_url(f"{live_server}/caseload")
    screens.check("home-coordinator")
    page.get_by_role("button", name="Sign out").click()
    assert "You have signed out" in page.content()
