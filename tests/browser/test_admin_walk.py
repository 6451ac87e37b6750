"""The org admin pages in a real browser: a walk with axe-core checks and screenshots."""

from __future__ import annotations

import re

from tests.browser.conftest import Screens, sign_in


def test_org_admin_walk(page, live_server, screens: Screens):
    sign_in(page, live_server, "admin@demo.stepdown.test")
    page.get_by_role("link", name="Organisation admin").first.click()
    page.wait_for_url(f"{live_server}/admin")
    assert page.title().startswith("Organisation admin:")
    screens.check("admin-overview")

    page.get_by_role("button", name="Add a team").click()
    page.get_by_role("button", name="Add team").click()
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.title().startswith("Error:")
    screens.check("admin-team-errors", mobile=False)
    page.get_by_label("Team name").fill("Early Intervention Team")
    page.get_by_role("button", name="Add team").click()
    page.wait_for_url(f"{live_server}/admin")
    assert "Team added" in page.content()

    page.get_by_role("button", name="Add a user").click()
    page.get_by_label("Full name").fill("Kim Lee")
    page.get_by_label("Email address").fill("kim@")
    page.get_by_label("Care coordinator").check()
    page.get_by_role("button", name="Add user").click()
    assert page.locator(".nhsuk-error-summary").is_visible()
    assert page.get_by_label("Full name").input_value() == "Kim Lee"
    screens.check("admin-user-errors")
    page.get_by_label("Email address").fill("kim.lee@example.org")
    page.get_by_label("Team", exact=True).select_option(label="Early Intervention Team")
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url(re.compile(r".*/admin/users/\d+$"))
    screens.check("admin-user")

    page.get_by_role("button", name="Add a role").click()
    page.get_by_label("Peer worker").check()
    page.get_by_label("Team", exact=True).select_option(label="Early Intervention Team")
    screens.check("admin-add-role", mobile=False)
    page.get_by_role("button", name="Add role").click()
    page.get_by_role("link", name="Remove Peer worker role").click()
    screens.check("admin-remove-role", mobile=False)
    page.get_by_role("button", name="Remove role").click()
    assert "Role removed" in page.content()

    page.goto(f"{live_server}/admin/api-clients/new")
    page.get_by_label("Name", exact=True).fill("Brent EPR")
    page.get_by_label("referrals:read").check()
    page.get_by_role("button", name="Create API client").click()
    page.wait_for_url(re.compile(r".*/admin/api-clients/\d+/created$"))
    assert "Copy the secret now" in page.content()
    screens.check("admin-api-client-created")
    page.goto(f"{live_server}/admin")
    page.get_by_role("link", name="Deactivate Brent EPR").click()
    screens.check("admin-api-client-deactivate", mobile=False)
    page.get_by_role("button", name="Deactivate API client").click()
    assert "API client deactivated" in page.content()
