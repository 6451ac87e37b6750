"""Test fixtures: a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), emptied after
each test, the app with a frozen clock, and sign-in helpers."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session

import models
from service import create_app
from service.clock import FrozenClock
from service.migrations import alembic_config

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or ""
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")
DEMO_PASSWORD = "stepdown-demo"


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests skip locally without it, but never in CI."""
    if ON_POSTGRES:
        return
    if os.environ.get("STEPDOWN_REQUIRE_POSTGRES"):
        raise pytest.UsageError("STEPDOWN_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing():
    """Real argon2, with test-sized cost so the suite stays fast."""
    from argon2 import PasswordHasher

    from service.auth import passwords

    original = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    passwords._DUMMY_HASH = passwords._hasher.hash("not-a-real-password")
    yield
    passwords._hasher = original


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db')}/stepdown-test.db"


@pytest.fixture(scope="session")
def token_key_file(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("keys") / "token-key.pem")


@pytest.fixture(scope="session")
def db_engine(database_url):
    engine = sa.create_engine(database_url)
    models.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    models.metadata.create_all(engine)
    from alembic import command

    command.stamp(alembic_config(database_url), "head")
    yield engine
    engine.dispose()


def _empty_all_tables(engine) -> None:
    tables = [t.name for t in models.metadata.sorted_tables]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # TRUNCATE does not fire the audit trail's row triggers.
            connection.execute(sa.text(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                connection.execute(sa.text(f'DELETE FROM "{name}"'))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2027, 1, 4, 9, 0, tzinfo=UTC))  # a Monday morning


@pytest.fixture
def app_config(database_url, token_key_file, clock) -> dict:
    return {
        "ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-test-secret-key-0123456789",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "TOKEN_PRIVATE_KEY_FILE": token_key_file,
        "BASE_URL": "http://localhost",
        "clock": clock,
    }


def _end_each_request_session(app) -> None:
    """While a test holds an app context open (the `db` fixture), requests share `g`, so a
    failed request's session would leak into the next request. End it per request, as
    production does when each request's app context pops."""
    from flask import g

    @app.teardown_request
    def _close_request_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


@pytest.fixture
def app(db_engine, app_config):
    app = create_app(app_config)
    app.config["TESTING"] = True
    _end_each_request_session(app)
    yield app
    _empty_all_tables(db_engine)
    app.extensions["stepdown.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    """A session for arranging and inspecting data outside requests."""
    with app.app_context():
        from service.db import engine

        with Session(engine(), expire_on_commit=False) as session:
            yield session


@pytest.fixture
def demo(app, db):
    """The demo alliance: organisations, teams, one user per role, an API client."""
    from service.demo import load_demo_data

    with app.app_context():
        data = load_demo_data(db)
        db.commit()
    return data


class AuthActions:
    """Sign in and out through the real pages, like the Flask tutorial's helper."""

    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = DEMO_PASSWORD, follow: bool = False):
        return self.client.post("/login", data={"email": email, "password": password},
                                follow_redirects=follow)

    def logout(self):
        return self.client.post("/logout")


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


def signed_in_client(app, email: str):
    """A fresh test client signed in as the demo user with this email."""
    c = app.test_client()
    response = AuthActions(c).login(email)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return c


@pytest.fixture
def as_user(app, demo):
    """as_user('coordinator') -> a client signed in as that demo user."""

    def make(name: str):
        email = name if "@" in name else f"{name}@demo.stepdown.test"
        return signed_in_client(app, email)

    return make
