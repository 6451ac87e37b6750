"""Local accounts: sign-in, lockout, session rotation and server-enforced timeouts."""

from __future__ import annotations

from sqlmodel import select

from models import LoginSession, User

COORDINATOR = "coordinator@demo.stepdown.test"
# A page the coordinator may see (their home "/" redirects to it).
PAGE = "/caseload"


def test_demo_login_reaches_home_page(auth, demo, client):
    response = auth.login(COORDINATOR, follow=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Casey Coordinator" in page
    assert "North Thames Mental Health NHS Trust" in page


def test_wrong_password_reshows_form_with_message_and_email(auth, demo):
    response = auth.login(COORDINATOR, password="wrong")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Enter a correct email address and password" in page
    assert COORDINATOR in page  # what was typed is kept
    assert "wrong" not in page  # the password is not


def test_empty_form_names_each_field(client, demo):
    page = client.post("/login", data={}).get_data(as_text=True)
    assert "Enter your email address" in page and "Enter your password" in page


def test_account_locks_after_repeated_failures(auth, demo, clock, db):
    for _ in range(5):
        auth.login(COORDINATOR, password="wrong")
    locked = auth.login(COORDINATOR)  # the right password, but locked
    assert locked.status_code == 200
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    clock.advance(minutes=16)
    assert auth.login(COORDINATOR).status_code == 302


def test_session_id_rotates_on_login(app, auth, demo, db, client):
    auth.login(COORDINATOR)
    first = {row.token_hash for row in db.exec(select(LoginSession)).all()}
    auth.login(COORDINATOR)
    db.expire_all()
    second = {row.token_hash for row in db.exec(select(LoginSession)).all()}
    assert len(second) == 1 and first.isdisjoint(second)


def test_session_cookie_flags(auth, demo):
    response = auth.login(COORDINATOR)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_idle_session_expires_after_30_minutes(auth, demo, client, clock):
    auth.login(COORDINATOR)
    clock.advance(minutes=29)
    assert client.get(PAGE).status_code == 200
    clock.advance(minutes=29)  # active 29 minutes ago: still in
    assert client.get(PAGE).status_code == 200
    clock.advance(minutes=31)
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/session-expired")
    assert client.get(PAGE).headers["Location"].startswith("/login")  # the session is gone


def test_absolute_session_limit_is_12_hours(auth, demo, client, clock):
    auth.login(COORDINATOR)
    for _ in range(24):  # active every 25 minutes for 10 hours
        clock.advance(minutes=25)
        assert client.get(PAGE).status_code == 200
    clock.advance(hours=2, minutes=1)
    assert client.get(PAGE).status_code == 302


def test_expired_session_on_api_gets_401(auth, demo, client, clock):
    auth.login(COORDINATOR)
    clock.advance(minutes=31)
    response = client.get("/api/v1/organisations")
    assert response.status_code == 401


def test_logout_ends_the_session_on_the_server(auth, demo, client, db):
    auth.login(COORDINATOR)
    auth.logout()
    assert db.exec(select(LoginSession)).all() == []
    assert client.get(PAGE).status_code == 302


def test_login_does_not_redirect_off_site(client, demo):
    response = client.post("/login?next=https://evil.example/x",
                           data={"email": COORDINATOR, "password": "stepdown-demo"})
    assert response.headers["Location"] == "/"


def test_deactivated_user_loses_session(auth, demo, client, db):
    auth.login(COORDINATOR)
    user = db.exec(select(User).where(User.email == COORDINATOR)).one()
    user.is_active = False
    db.add(user)
    db.commit()
    assert client.get(PAGE).status_code == 302


def test_csrf_token_required_on_forms(app_config, db_engine, demo):
    from service import create_app

    app = create_app(dict(app_config, WTF_CSRF_ENABLED=True))
    response = app.test_client().post("/login", data={"email": COORDINATOR,
                                                      "password": "stepdown-demo"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
