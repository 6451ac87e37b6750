"""Org admin pages: my organisation, add a team/user/role, remove a role, API clients.

Forms validate with the API's schemas; errors re-show the form (NHS.UK error summary and
inline messages) with what was typed, never a 500; success redirects.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models import ApiClient, AuditEvent, Cis2RoleMapping, Membership, Team, User
from service import create_app
from service.auth.passwords import verify_password
from tests.conftest import DEMO_PASSWORD

ORG_A_NAMES = ("North Thames", "Brent Community", "coordinator@", "Casey", "RXA", "demo-epr")


def _text(response) -> str:
    return response.get_data(as_text=True)


def _error_summary(response) -> list[str]:
    html = _text(response)
    assert 'class="nhsuk-error-summary"' in html
    block = html.split('nhsuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]
    return [re.sub(r"\s+", " ", m).strip() for m in re.findall(r"<li>(.*?)</li>", block, re.S)]


def _field_value(response, name: str) -> str | None:
    match = re.search(rf'name="{name}" type="[a-z]+" value="([^"]*)"', _text(response))
    return match.group(1) if match else None


@pytest.fixture
def admin(as_user):
    return as_user("admin")


@pytest.fixture
def org_a(demo):
    return demo["organisations"]["trust-a"]


@pytest.fixture
def records(demo, db):
    coordinator = demo["users"]["coordinator@demo.stepdown.test"]
    return {
        "user": coordinator.id,
        "membership": db.exec(select(Membership).where(
            Membership.user_id == coordinator.id)).one().id,
        "client": db.exec(select(ApiClient).where(ApiClient.client_id == "demo-epr")).one().id,
        "team": demo["teams"]["Brent Community Mental Health Team"].id,
        "own_team": demo["teams"]["Peer Mentoring Team"].id,
    }


# ---- Overview ------------------------------------------------------------------------------

def test_overview_shows_teams_users_with_roles_and_api_clients(admin, db, demo):
    response = admin.get("/admin")
    assert response.status_code == 200
    html = _text(response)
    assert "<title>Organisation admin: North Thames Mental Health NHS Trust – Stepdown</title>" in html
    for expected in ("Brent Community Mental Health Team", "Safeguarding Team", "Casey Coordinator",
                     "coordinator@demo.stepdown.test", "Care coordinator (Brent Community Mental "
                     "Health Team)", "Demo electronic patient record", "demo-epr", "RXA"):
        assert expected in html, expected
    assert "Val Worker" not in html  # another organisation's user
    assert 'href="/admin"' in html and "Organisation admin</strong>" in html  # the nav entry
    assert "argon2" not in html
    events = {(e.action, e.record_type) for e in db.exec(select(AuditEvent)).all()}
    assert {("list", "team"), ("list", "user"), ("list", "api-client")} <= events


def test_list_pages_are_paginated(admin, org_a, db):
    for n in range(55):
        db.add(Team(organisation_id=org_a.id, name=f"Team {n:02d}"))
    db.commit()
    first = admin.get("/admin/teams")
    assert first.status_code == 200 and 'rel="next"' in _text(first)
    after = re.search(r'href="/admin/teams\?after=(\d+)" rel="next"', _text(first)).group(1)
    second = admin.get(f"/admin/teams?after={after}")
    assert "Team 54" in _text(second) and 'rel="prev"' in _text(second)
    assert 'rel="next"' not in _text(second)
    assert admin.get("/admin/teams?after=nonsense").status_code == 200
    assert "View all teams" in _text(admin.get("/admin"))
    for path in ("/admin/users", "/admin/api-clients"):
        assert admin.get(path).status_code == 200


@pytest.mark.parametrize("role", ["coordinator", "duty", "peer", "vcse", "vcse-manager",
                                  "contracts"])
def test_non_admin_roles_get_403(as_user, role, records):
    user = as_user(role)
    for path in ("/admin", "/admin/users", "/admin/teams/new", "/admin/api-clients/new",
                 f"/admin/users/{records['user']}"):
        response = user.get(path)
        assert response.status_code == 403, (role, path)
        assert response.mimetype == "text/html"
    assert user.post("/admin/teams/new", data={"name": "X"}).status_code == 403


def test_other_organisations_records_are_404_on_pages(as_user, records, db, demo):
    admin_b = as_user("admin-b")
    cases = [
        ("GET", f"/admin/users/{records['user']}", None),
        ("GET", f"/admin/users/{records['user']}/memberships/new", None),
        ("POST", f"/admin/users/{records['user']}/memberships/new",
         {"role": "peer_worker", "team_id": str(records["own_team"])}),
        ("GET", f"/admin/memberships/{records['membership']}/remove", None),
        ("POST", f"/admin/memberships/{records['membership']}/remove", {}),
        ("GET", f"/admin/api-clients/{records['client']}/created", None),
        ("GET", f"/admin/api-clients/{records['client']}/deactivate", None),
        ("POST", f"/admin/api-clients/{records['client']}/deactivate", {}),
    ]
    for method, path, data in cases:
        response = admin_b.open(path, method=method, data=data)
        assert response.status_code == 404, (method, path)
        assert response.mimetype == "text/html"
        for name in ORG_A_NAMES:
            assert name not in _text(response), (path, name)
    db.expire_all()
    denied = db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied")).all()
    assert len(denied) == len(cases)
    assert db.get(ApiClient, records["client"]).is_active
    assert db.get(Membership, records["membership"]) is not None


# ---- Teams ---------------------------------------------------------------------------------

def test_add_team(admin, org_a, db):
    form = admin.get("/admin/teams/new")
    assert form.status_code == 200 and 'name="csrf_token"' in _text(form)
    response = admin.post("/admin/teams/new", data={"name": "Early Intervention Team",
                                                    "email": "eit@example.org"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin"
    team = db.exec(select(Team).where(Team.name == "Early Intervention Team")).one()
    assert team.organisation_id == org_a.id and team.email == "eit@example.org"
    assert "Team added: Early Intervention Team" in _text(admin.get("/admin"))


def test_add_team_errors_reshow_the_form_with_values(admin):
    response = admin.post("/admin/teams/new", data={"name": "", "email": "not an email"})
    assert response.status_code == 422
    assert _error_summary(response) == [
        '<a href="#name"> Enter a team name </a>',
        '<a href="#email"> Enter an email address in the correct format, like team@example.org </a>',
    ]
    html = _text(response)
    assert html.count("nhsuk-error-message") == 2
    assert "<title>Error: Add a team – Stepdown</title>" in html
    assert _field_value(response, "email") == "not an email"
    duplicate = admin.post("/admin/teams/new", data={"name": "Safeguarding Team"})
    assert duplicate.status_code == 422
    assert "Your organisation already has a team with this name" in _text(duplicate)
    assert _field_value(duplicate, "name") == "Safeguarding Team"


def test_unknown_or_malformed_form_fields_never_500(admin, records):
    unknown = admin.post("/admin/teams/new", data={"name": "New", "is_admin": "yes"})
    assert unknown.status_code == 422
    assert "The form had a field this page does not use" in _text(unknown)
    bad_team = admin.post("/admin/users/new", data={"display_name": "A", "email": "a@example.org",
                                                    "role": "peer_worker", "team_id": "abc"})
    assert bad_team.status_code == 422 and "Choose a team" in _text(bad_team)
    bad_scope = admin.post("/admin/api-clients/new", data={"name": "X", "scopes": ["root"]})
    assert bad_scope.status_code == 422 and "Choose scopes from the list" in _text(bad_scope)


# ---- Users and roles -----------------------------------------------------------------------

def test_add_user_shows_every_problem_at_once_and_keeps_values(admin, records):
    response = admin.post("/admin/users/new", data={
        "display_name": "Kim Lee", "email": "kim@", "password": "short",
        "role": "vcse_worker", "team_id": str(records["own_team"]), "is_team_manager": "true"})
    assert response.status_code == 422
    summary = " ".join(_error_summary(response))
    for message in ("Enter an email address in the correct format",
                    "Enter a password of at least 12 characters",
                    "Choose a role that a statutory organisation can give",
                    "Choose a team in your organisation"):
        assert message in summary
    assert summary.index("email") < summary.index("password") < summary.index("role")
    assert _field_value(response, "display_name") == "Kim Lee"
    assert _field_value(response, "email") == "kim@"
    assert 'value="short"' not in _text(response)  # passwords are never sent back
    assert re.search(r'id="is_team_manager"[^>]*checked', _text(response))


def test_add_user_then_they_can_sign_in(admin, app, records, db):
    response = admin.post("/admin/users/new", data={
        "display_name": "Kim Lee", "email": "Kim.Lee@example.org", "password": "twelve chars ok",
        "role": "care_coordinator", "team_id": str(records["team"])})
    assert response.status_code == 302
    user = db.exec(select(User).where(User.email == "kim.lee@example.org")).one()
    assert response.headers["Location"] == f"/admin/users/{user.id}"
    page = admin.get(f"/admin/users/{user.id}")
    assert "Kim Lee" in _text(page) and "Care coordinator" in _text(page)
    assert "Password" in _text(page)
    fresh = app.test_client()
    signed_in = fresh.post("/login", data={"email": "kim.lee@example.org",
                                           "password": "twelve chars ok"})
    assert signed_in.status_code == 302


def test_add_and_remove_a_role(admin, records, db):
    user_id = records["user"]
    wrong = admin.post(f"/admin/users/{user_id}/memberships/new",
                       data={"role": "vcse_manager", "team_id": str(records["team"])})
    assert wrong.status_code == 422
    assert "Choose a role that a statutory organisation can give" in _text(wrong)
    missing = admin.post(f"/admin/users/{user_id}/memberships/new", data={})
    assert missing.status_code == 422 and _error_summary(missing) == [
        '<a href="#role"> Choose a role </a>']
    added = admin.post(f"/admin/users/{user_id}/memberships/new",
                       data={"role": "peer_worker", "team_id": str(records["team"]),
                             "is_team_manager": "true"})
    assert added.status_code == 302 and added.headers["Location"] == f"/admin/users/{user_id}"
    new = db.exec(select(Membership).where(Membership.user_id == user_id,
                                           Membership.role == "peer_worker")).one()
    assert new.is_team_manager is True
    new_id = new.id
    again = admin.post(f"/admin/users/{user_id}/memberships/new",
                       data={"role": "peer_worker", "team_id": str(records["team"])})
    assert again.status_code == 422 and "already has this role" in _text(again)

    confirm = admin.get(f"/admin/memberships/{new_id}/remove")
    assert confirm.status_code == 200 and "Remove this role?" in _text(confirm)
    removed = admin.post(f"/admin/memberships/{new_id}/remove")
    assert removed.status_code == 302 and removed.headers["Location"] == f"/admin/users/{user_id}"
    db.expire_all()
    assert db.get(Membership, new_id) is None


def test_cannot_remove_your_own_current_role(admin, demo, db):
    mine = db.exec(select(Membership).where(
        Membership.user_id == demo["users"]["admin@demo.stepdown.test"].id)).one()
    response = admin.post(f"/admin/memberships/{mine.id}/remove")
    assert response.status_code == 409
    assert "You cannot remove the role you are using" in " ".join(_error_summary(response))
    db.expire_all()
    assert db.get(Membership, mine.id) is not None


# ---- API clients ---------------------------------------------------------------------------

def test_api_client_form_errors_keep_values(admin, records):
    response = admin.post("/admin/api-clients/new", data={"name": "", "team_id": str(records["team"])})
    assert response.status_code == 422
    assert _error_summary(response) == ['<a href="#name"> Enter a name for the client </a>',
                                        '<a href="#scopes"> Choose at least one scope </a>']
    kept = admin.post("/admin/api-clients/new", data={"name": "EPR", "scopes": ["flows:read"],
                                                      "team_id": str(records["own_team"])})
    assert kept.status_code == 422 and "Choose a team in your organisation" in _text(kept)
    assert _field_value(kept, "name") == "EPR"
    assert re.search(r'value="flows:read"\s+checked', _text(kept))


def test_create_api_client_shows_the_secret_once(admin, db, org_a):
    response = admin.post("/admin/api-clients/new", data={
        "name": "Brent EPR", "scopes": ["referrals:read", "referrals:write"]})
    assert response.status_code == 302
    client = db.exec(select(ApiClient).where(ApiClient.name == "Brent EPR")).one()
    assert client.organisation_id == org_a.id and client.scopes == "referrals:read referrals:write"
    assert response.headers["Location"] == f"/admin/api-clients/{client.id}/created"
    cookies = " ".join(response.headers.getlist("Set-Cookie"))
    page = admin.get(response.headers["Location"])
    html = _text(page)
    secret = re.search(r"Client secret\s*</dt>\s*<dd[^>]*>\s*(\S+)\s*</dd>", html).group(1)
    assert verify_password(client.secret_hash, secret)
    assert secret not in cookies  # kept encrypted between the two requests
    assert client.client_id in html and "Copy the secret now" in html
    again = admin.get(response.headers["Location"])
    assert secret not in _text(again) and "already been shown" in _text(again)
    assert page.headers["Cache-Control"] == "no-store"


def test_deactivate_api_client(admin, records, db):
    confirm = admin.get(f"/admin/api-clients/{records['client']}/deactivate")
    assert confirm.status_code == 200 and "Deactivate this API client?" in _text(confirm)
    response = admin.post(f"/admin/api-clients/{records['client']}/deactivate")
    assert response.status_code == 302
    db.expire_all()
    assert db.get(ApiClient, records["client"]).is_active is False
    assert "Deactivated" in _text(admin.get("/admin"))
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "deactivate")).all()
    assert [e.record_id for e in events] == [str(records["client"])]


# ---- CSRF ----------------------------------------------------------------------------------

def test_map_a_cis2_national_role(admin, org_a, records, db):
    """A trust's admin says which national role at their ODS code signs in as what."""
    overview = _text(admin.get("/admin"))
    assert 'href="/admin/cis2-role-mappings"' in overview
    empty = admin.post("/admin/cis2-role-mappings/new", data={"role_code": "R 8000!"})
    assert empty.status_code == 422
    assert _error_summary(empty) == [
        '<a href="#role_code"> Enter a national RBAC role code such as R8000 </a>',
        '<a href="#role"> Choose a role </a>',
    ]
    assert _field_value(empty, "role_code") == "R 8000!"
    vcse_role = admin.post("/admin/cis2-role-mappings/new",
                           data={"role_code": "R8000", "role": "vcse_worker"})
    assert vcse_role.status_code == 422
    assert "Choose a role that a statutory organisation can give" in _text(vcse_role)
    done = admin.post("/admin/cis2-role-mappings/new", data={
        "role_code": "R8000", "role": "care_coordinator", "team_id": str(records["team"])})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/cis2-role-mappings"
    mapping = db.exec(select(Cis2RoleMapping).where(Cis2RoleMapping.role_code == "R8000")).one()
    assert (mapping.organisation_id, mapping.ods_code, mapping.role, mapping.team_id) == (
        org_a.id, org_a.ods_code, "care_coordinator", records["team"])
    listed = _text(admin.get("/admin/cis2-role-mappings"))
    assert "R8000" in listed and "Care coordinator" in listed
    assert "Brent Community Mental Health Team" in listed
    again = admin.post("/admin/cis2-role-mappings/new", data={
        "role_code": "R8000", "role": "duty_clinician", "team_id": str(records["team"])})
    assert again.status_code == 422 and "This role code is already mapped" in _text(again)


def test_cis2_pages_are_for_statutory_organisations_only(as_user):
    vcse_admin = as_user("admin-b")
    assert 'href="/admin/cis2-role-mappings"' not in _text(vcse_admin.get("/admin"))
    assert vcse_admin.get("/admin/cis2-role-mappings").status_code == 404
    assert vcse_admin.post("/admin/cis2-role-mappings/new",
                           data={"role_code": "R8000", "role": "peer_worker"}).status_code == 404


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_forms_need_the_csrf_token(app_config, demo, db):
    app = create_app(dict(app_config, WTF_CSRF_ENABLED=True))
    app.config["TESTING"] = True
    client = app.test_client()
    token = _csrf(_text(client.get("/login")))
    signed_in = client.post("/login", data={"email": "admin@demo.stepdown.test",
                                            "password": DEMO_PASSWORD, "csrf_token": token})
    assert signed_in.status_code == 302
    refused = client.post("/admin/teams/new", data={"name": "No Token Team"})
    assert refused.status_code == 400
    token = _csrf(_text(client.get("/admin/teams/new")))
    accepted = client.post("/admin/teams/new", data={"name": "Token Team", "csrf_token": token})
    assert accepted.status_code == 302
    assert db.exec(select(Team).where(Team.name == "No Token Team")).first() is None
    assert db.exec(select(Team).where(Team.name == "Token Team")).first() is not None
    app.extensions["stepdown.engine"].dispose()
