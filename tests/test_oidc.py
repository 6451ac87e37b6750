"""Sign-in with an OpenID Connect provider (e.g. Microsoft Entra ID), against a local test
provider: only identities an org admin registered get in; bad ID tokens start no session."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey
from sqlmodel import select

from models import AuditEvent, LoginSession, UserIdentity
from service import create_app
from tests.fixtures.oidc_provider import (
    CLIENT_ID,
    finish_login,
    oidc_settings,
    run_provider,
    start_login,
)

NAME = "entra"
LABEL = "Microsoft Entra ID"
SUBJECT = "entra-user-1"
VCSE_WORKER = "vcse@demo.stepdown.test"


@pytest.fixture
def provider():
    with run_provider() as running:
        yield running


@pytest.fixture
def app_config(app_config, provider):
    return {**app_config, **oidc_settings(provider, NAME, LABEL)}


@pytest.fixture
def now(clock) -> int:
    return int(clock.now().timestamp())


@pytest.fixture
def linked_user(db, demo, provider):
    """The demo VCSE worker, whose Entra identity her org admin registered."""
    user = demo["users"][VCSE_WORKER]
    db.add(UserIdentity(user_id=user.id, issuer=provider.issuer, subject=SUBJECT))
    db.commit()
    return user


def sign_in(client, provider, now, **overrides):
    params = start_login(client, NAME)
    nonce = overrides.pop("nonce", params["nonce"])
    provider.issue(provider.claims(nonce, now, **overrides))
    return finish_login(client, NAME, params["state"])


def assert_no_session(client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    db.expire_all()
    assert db.exec(select(LoginSession)).all() == []


def denied_actions(db) -> list[str]:
    db.expire_all()
    return [e.action for e in db.exec(select(AuditEvent).where(AuditEvent.outcome == "denied"))]


def assert_refused(response, client, db, reason: str, status: int = 401) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    page = response.get_data(as_text=True)
    assert "You cannot sign in" in page
    assert response.mimetype == "text/html"
    assert f"sign-in:{reason}" in denied_actions(db)
    assert_no_session(client, db)


# --- the happy path ------------------------------------------------------------------------


def test_login_page_offers_the_provider(client, demo):
    page = client.get("/login").get_data(as_text=True)
    assert f"Sign in with {LABEL}" in page
    assert f"/oidc/{NAME}/login" in page


def test_login_redirects_to_the_provider_with_state_nonce_and_pkce(client, demo, provider):
    params = start_login(client, NAME)
    assert params["_endpoint"] == f"{provider.issuer}/authorize"
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"http://localhost/oidc/{NAME}/callback"
    assert params["scope"].split() == ["openid", "profile", "email"]
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 20
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]


def test_registered_identity_signs_in(client, provider, linked_user, now, db):
    response = sign_in(client, provider, now)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200 and "Val Worker" in home.get_data(as_text=True)
    exchange = provider.token_requests[-1]
    assert exchange["form"]["grant_type"] == "authorization_code"
    assert exchange["form"]["redirect_uri"] == f"http://localhost/oidc/{NAME}/callback"
    assert exchange["form"]["code_verifier"]  # PKCE
    db.expire_all()
    assert len(db.exec(select(LoginSession)).all()) == 1
    events = db.exec(select(AuditEvent).where(AuditEvent.action == f"sign-in:{NAME}")).all()
    assert [(e.actor_user_id, e.outcome) for e in events] == [(linked_user.id, "allowed")]


def test_sign_in_returns_to_the_page_asked_for(client, provider, linked_user, now):
    params = start_login_with_next(client, "/referrals?box=inbox")
    provider.issue(provider.claims(params["nonce"], now))
    response = finish_login(client, NAME, params["state"])
    assert response.headers["Location"] == "/referrals?box=inbox"


def test_sign_in_never_redirects_off_site(client, provider, linked_user, now):
    params = start_login_with_next(client, "https://evil.example/")
    provider.issue(provider.claims(params["nonce"], now))
    assert finish_login(client, NAME, params["state"]).headers["Location"] == "/"


def start_login_with_next(client, target: str) -> dict:
    from urllib.parse import parse_qs, quote, urlsplit

    response = client.get(f"/oidc/{NAME}/login?next={quote(target, safe='')}")
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


# --- who may sign in -----------------------------------------------------------------------


def test_an_account_at_the_provider_is_not_enough(client, provider, demo, now, db):
    response = sign_in(client, provider, now, sub="someone-nobody-registered")
    assert_refused(response, client, db, "no-linked-account", status=403)
    assert "not linked to Stepdown" in response.get_data(as_text=True)


def test_the_same_subject_at_another_issuer_is_not_matched(client, provider, demo, now, db):
    user = demo["users"][VCSE_WORKER]
    db.add(UserIdentity(user_id=user.id, issuer="https://login.other.example/v2.0",
                        subject=SUBJECT))
    db.commit()
    assert_refused(sign_in(client, provider, now), client, db, "no-linked-account", status=403)


def test_a_deactivated_user_cannot_sign_in(client, provider, linked_user, now, db):
    linked_user.is_active = False
    db.add(linked_user)
    db.commit()
    assert_refused(sign_in(client, provider, now), client, db, "no-linked-account", status=403)


# --- bad ID tokens -------------------------------------------------------------------------


def test_wrong_issuer_is_refused(client, provider, linked_user, now, db):
    response = sign_in(client, provider, now, iss="https://login.evil.example")
    assert_refused(response, client, db, "id-token-iss")


def test_wrong_audience_is_refused_even_with_our_azp(client, provider, linked_user, now, db):
    response = sign_in(client, provider, now, aud="another-relying-party")
    assert_refused(response, client, db, "id-token-aud")


def test_wrong_nonce_is_refused(client, provider, linked_user, now, db):
    assert_refused(sign_in(client, provider, now, nonce="replayed-nonce"), client, db,
                   "id-token-nonce")


def test_missing_nonce_is_refused(client, provider, linked_user, now, db):
    assert_refused(sign_in(client, provider, now, nonce=None), client, db, "id-token-nonce")


def test_expired_id_token_is_refused(client, provider, linked_user, now, db):
    response = sign_in(client, provider, now, iat=now - 900, auth_time=now - 900, exp=now - 120)
    assert_refused(response, client, db, "id-token-expired")


def test_expiry_follows_the_service_clock(client, provider, linked_user, now, db, clock):
    params = start_login(client, NAME)
    provider.issue(provider.claims(params["nonce"], now))  # valid for 5 minutes
    clock.advance(minutes=10)
    assert_refused(finish_login(client, NAME, params["state"]), client, db, "id-token-expired")


def test_id_token_signed_by_another_key_is_refused(client, provider, linked_user, now, db):
    params = start_login(client, NAME)
    stranger = RSAKey.generate_key(2048)
    provider.issue(provider.claims(params["nonce"], now), key=stranger, kid=provider.key.kid)
    assert_refused(finish_login(client, NAME, params["state"]), client, db, "invalid-id-token")


def test_id_token_with_unknown_key_id_is_refused(client, provider, linked_user, now, db):
    params = start_login(client, NAME)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "not-published"})
    provider.issue(provider.claims(params["nonce"], now), key=stranger)
    assert_refused(finish_login(client, NAME, params["state"]), client, db, "invalid-id-token")


def test_token_response_without_id_token_is_refused(client, provider, linked_user, db):
    params = start_login(client, NAME)
    provider.id_token = None
    assert_refused(finish_login(client, NAME, params["state"]), client, db, "invalid-id-token")


# --- the flow itself -----------------------------------------------------------------------


def test_callback_without_a_started_login_is_refused(client, provider, linked_user, now, db):
    provider.issue(provider.claims("whatever", now))
    assert_refused(finish_login(client, NAME, "forged-state"), client, db, "state-mismatch",
                   status=400)


def test_a_state_cannot_be_used_twice(client, provider, linked_user, now, db):
    params = start_login(client, NAME)
    provider.issue(provider.claims(params["nonce"], now))
    assert finish_login(client, NAME, params["state"]).status_code == 302
    client.post("/logout")
    assert_refused(finish_login(client, NAME, params["state"]), client, db, "state-mismatch",
                   status=400)


def test_provider_error_is_refused(client, provider, linked_user, db):
    params = start_login(client, NAME)
    response = client.get(f"/oidc/{NAME}/callback?error=access_denied&state={params['state']}")
    assert_refused(response, client, db, "provider-error")


def test_refused_sign_in_ends_an_earlier_session(client, auth, provider, linked_user, now, db):
    assert auth.login(VCSE_WORKER).status_code == 302
    response = sign_in(client, provider, now, aud="another-relying-party")
    assert response.status_code == 401
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_unknown_provider_is_not_found(client, demo):
    assert client.get("/oidc/nope/login").status_code == 404
    assert client.get("/oidc/nope/callback?code=x&state=y").status_code == 404


def test_unreachable_provider_gives_a_clear_page(app_config, db_engine, demo):
    config = dict(app_config, OIDC_DISCOVERY_URL="http://127.0.0.1:9/.well-known/openid-configuration")
    app = create_app(config)
    try:
        response = app.test_client().get(f"/oidc/{NAME}/login")
        assert response.status_code == 503
        assert "Sign-in is not available" in response.get_data(as_text=True)
    finally:
        app.extensions["stepdown.engine"].dispose()


def test_without_oidc_settings_no_provider_is_offered(app_config, db_engine, demo):
    config = {k: v for k, v in app_config.items() if not k.startswith("OIDC_")}
    app = create_app(config)
    try:
        client = app.test_client()
        assert "/oidc/" not in client.get("/login").get_data(as_text=True)
        assert client.get(f"/oidc/{NAME}/login").status_code == 404
    finally:
        app.extensions["stepdown.engine"].dispose()


@pytest.mark.parametrize("setting, value, words", [
    ("OIDC_ACR_MIN", "AAL4", "OIDC_ACR_MIN"),
    ("OIDC_NAME", "Bad Name/..", "OIDC_NAME"),
    ("OIDC_CLIENT_SECRET", "", "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"),
])
def test_bad_oidc_settings_are_refused_at_start(setting, value, words):
    from service.config import ConfigError, load_settings

    environ = {"OIDC_DISCOVERY_URL": "https://login.example/.well-known/openid-configuration",
               "OIDC_CLIENT_ID": "client", "OIDC_CLIENT_SECRET": "secret", setting: value}
    with pytest.raises(ConfigError, match=words):
        load_settings(environ=environ)


def test_production_needs_an_https_discovery_url():
    from service.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="OIDC_DISCOVERY_URL must be https"):
        load_settings(environ={
            "STEPDOWN_ENV": "production", "SECRET_KEY": "s" * 40, "BASE_URL": "https://sd.example",
            "DATABASE_URL": "postgresql+psycopg://db/stepdown", "TOKEN_PRIVATE_KEY_FILE": "/k.pem",
            "OIDC_DISCOVERY_URL": "http://idp.example/.well-known/openid-configuration",
            "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s"})
