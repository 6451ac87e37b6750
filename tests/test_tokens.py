"""API clients: the OAuth2 client-credentials grant, RS256 access tokens, forgeries refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlmodel import select

from models import ApiClient, AuditEvent
from service import create_app
from service.auth import tokens

CLIENT_ID = "demo-epr"
CLIENT_SECRET = "demo-epr-secret"  # noqa: S105 - the demo client's published secret
ORGANISATIONS = "/api/v1/organisations"


def _basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def request_token(client, scope: str | None = None, **auth) -> object:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return client.post("/oauth/token", data=data, headers=_basic(**auth))


def get_token(client, scope: str | None = None) -> str:
    response = request_token(client, scope)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(app, **overrides) -> dict:
    settings = app.config["SETTINGS"]
    now = int(app.extensions["stepdown.clock"].now().timestamp())
    claims = {"iss": settings.token_issuer, "aud": settings.TOKEN_AUDIENCE, "sub": CLIENT_ID,
              "client_id": CLIENT_ID, "scope": "referrals:read referrals:write", "iat": now,
              "nbf": now, "exp": now + 300, "jti": secrets.token_hex(8)}
    claims.update(overrides)
    return claims


def _current_key(app) -> RSAKey:
    with app.app_context():
        return tokens.keys().current


def forge(app, key: RSAKey | None = None, header: dict | None = None, **claims) -> str:
    """A token signed with `key` (default: the service's own key) and these claims."""
    key = key or _current_key(app)
    head = {"alg": "RS256", "kid": _current_key(app).kid, "typ": "at+jwt"}
    head.update(header or {})
    return jwt.encode(head, _claims(app, **claims), key, algorithms=["RS256"])


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"'), challenge
    assert response.mimetype == "application/problem+json"


# --- the token endpoint --------------------------------------------------------------------


def test_client_secret_basic_gets_a_short_lived_rs256_token(client, demo, app):
    response = request_token(client)
    assert response.status_code == 200
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["SETTINGS"].TOKEN_TTL_SECONDS <= 900
    assert set(body["scope"].split()) == {"referrals:read", "referrals:write"}
    assert "refresh_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt" and header["kid"]


def test_client_secret_post_is_accepted(client, demo):
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})
    assert response.status_code == 200
    assert response.json["access_token"]


def test_valid_token_reads_organisations(client, demo):
    token = get_token(client)
    response = client.get(ORGANISATIONS, headers=bearer(token))
    assert response.status_code == 200
    assert response.json["items"]


def test_issuing_a_token_is_audited(client, demo, db):
    get_token(client)
    events = db.exec(select(AuditEvent).where(AuditEvent.action == "issue-token")).all()
    assert len(events) == 1
    assert events[0].actor_client_id is not None and events[0].outcome == "allowed"


@pytest.mark.parametrize("client_id, secret", [
    (CLIENT_ID, "wrong-secret"),
    ("no-such-client", CLIENT_SECRET),
])
def test_bad_client_credentials_are_refused(client, demo, client_id, secret):
    response = request_token(client, client_id=client_id, secret=secret)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "access_token" not in response.json


def test_inactive_client_gets_no_token(client, demo, db):
    row = db.exec(select(ApiClient).where(ApiClient.client_id == CLIENT_ID)).one()
    row.is_active = False
    db.add(row)
    db.commit()
    response = request_token(client)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_no_client_authentication_is_refused(client, demo):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_scope_beyond_the_clients_scopes_is_invalid_scope(client, demo):
    response = request_token(client, scope="referrals:read admin")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"


def test_requested_scopes_narrow_the_token(client, demo):
    response = request_token(client, scope="referrals:read")
    assert response.status_code == 200
    assert response.json["scope"] == "referrals:read"


def test_other_grant_types_are_unsupported(client, demo):
    response = client.post("/oauth/token", data={"grant_type": "password", "username": "x",
                                                 "password": "y"}, headers=_basic())
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_grant_type"


def test_token_endpoint_needs_no_csrf_token(app_config, db_engine, demo):
    app = create_app(dict(app_config, WTF_CSRF_ENABLED=True))
    try:
        assert request_token(app.test_client()).status_code == 200
    finally:
        app.extensions["stepdown.engine"].dispose()


# --- forgeries -----------------------------------------------------------------------------


def test_signature_by_another_key_is_refused(client, demo, app):
    stranger = RSAKey.generate_key(2048)
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(forge(app, key=stranger))))


def test_alg_none_is_refused(client, demo, app):
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt",
                              "kid": _current_key(app).kid}).encode())
    payload = _b64(json.dumps(_claims(app)).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_hs256_signed_with_the_public_key_is_refused(client, demo, app):
    """The classic algorithm-confusion attack: HMAC keyed with the published RSA key."""
    key = _current_key(app)
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}).encode())
    payload = _b64(json.dumps(_claims(app)).encode())
    for secret in (key.as_pem(private=False), json.dumps(key.as_dict(private=False)).encode()):
        signature = _b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_wrong_issuer_is_refused(client, demo, app):
    token = forge(app, iss="https://evil.example")
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_wrong_audience_is_refused(client, demo, app):
    token = forge(app, aud="another-api")
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_missing_expiry_is_refused(client, demo, app):
    claims = _claims(app)
    del claims["exp"]
    token = jwt.encode({"alg": "RS256", "kid": _current_key(app).kid, "typ": "at+jwt"}, claims,
                       _current_key(app))
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_expired_token_is_refused(client, demo, clock, app):
    token = get_token(client)
    assert client.get(ORGANISATIONS, headers=bearer(token)).status_code == 200
    clock.advance(seconds=app.config["SETTINGS"].TOKEN_TTL_SECONDS + 31)  # past the leeway
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_unknown_key_id_is_refused(client, demo, app):
    token = forge(app, header={"kid": "no-such-key"})
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_unknown_client_is_refused(client, demo, app):
    token = forge(app, sub="ghost-client", client_id="ghost-client")
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_token_of_a_deactivated_client_is_refused(client, demo, db):
    token = get_token(client)
    row = db.exec(select(ApiClient).where(ApiClient.client_id == CLIENT_ID)).one()
    row.is_active = False
    db.add(row)
    db.commit()
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


def test_a_jwt_that_is_not_an_access_token_is_refused(client, demo, app):
    token = forge(app, header={"typ": "JWT"})  # e.g. an ID token signed by the same key
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(token)))


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "....", "eyJ9.eyJ9.x",
                                     _b64(b"[1]") + "." + _b64(b"[2]") + ".x"])
def test_malformed_tokens_are_refused(client, demo, garbage):
    assert_invalid_token(client.get(ORGANISATIONS, headers=bearer(garbage)))


def test_other_authorization_schemes_are_refused(client, demo):
    response = client.get(ORGANISATIONS, headers=_basic())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- scopes --------------------------------------------------------------------------------


def test_token_without_the_scope_a_route_needs_is_forbidden(client, demo):
    token = get_token(client, scope="referrals:write")  # no read scope
    response = client.get(ORGANISATIONS, headers=bearer(token))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_scopes_are_capped_by_what_the_client_holds_now(client, demo, db, app):
    """A scope removed from the client stops working even in tokens issued before."""
    token = get_token(client)
    row = db.exec(select(ApiClient).where(ApiClient.client_id == CLIENT_ID)).one()
    row.scopes = "referrals:write"
    db.add(row)
    db.commit()
    assert client.get(ORGANISATIONS, headers=bearer(token)).status_code == 403
    forged_admin = forge(app, scope="admin referrals:read")  # validly signed, scope not held
    assert client.get(ORGANISATIONS, headers=bearer(forged_admin)).status_code == 403


# --- keys ----------------------------------------------------------------------------------


def test_jwks_verifies_an_issued_token(client, demo, app):
    token = get_token(client)
    document = client.get("/.well-known/jwks.json")
    assert document.status_code == 200
    assert all("d" not in key and "p" not in key for key in document.json["keys"])
    keyset = KeySet.import_key_set(document.json)
    decoded = jwt.decode(token, keyset, algorithms=["RS256"])
    assert decoded.claims["sub"] == CLIENT_ID
    assert decoded.claims["iss"] == app.config["SETTINGS"].token_issuer


def test_token_signed_by_a_previous_key_still_verifies(app_config, db_engine, demo, tmp_path):
    old = RSAKey.generate_key(2048)
    old_public = tmp_path / "previous.pem"
    old_public.write_bytes(old.as_pem(private=False))
    rotated = create_app(dict(app_config, TOKEN_PREVIOUS_PUBLIC_KEY_FILES=str(old_public)))
    try:
        client = rotated.test_client()
        kids = {key["kid"] for key in client.get("/.well-known/jwks.json").json["keys"]}
        assert old.thumbprint() in kids and len(kids) == 2
        token = forge(rotated, key=old, header={"kid": old.thumbprint()})
        assert client.get(ORGANISATIONS, headers=bearer(token)).status_code == 200
        # New tokens are signed by the current key, which the JWKS also lists.
        fresh = get_token(client)
        assert client.get(ORGANISATIONS, headers=bearer(fresh)).status_code == 200
    finally:
        rotated.extensions["stepdown.engine"].dispose()


def test_previous_keys_cannot_sign_new_tokens(app_config, db_engine, demo, tmp_path):
    """Only a public key is loaded for a previous key; a private file is refused as such."""
    old = RSAKey.generate_key(2048)
    path = tmp_path / "previous.pem"
    path.write_bytes(old.as_pem(private=True))
    rotated = create_app(dict(app_config, TOKEN_PREVIOUS_PUBLIC_KEY_FILES=str(path)))
    try:
        with rotated.app_context():
            keys = tokens.keys()
            assert keys.current.kid != old.thumbprint()
            assert all(not k.is_private for k in keys.keyset.keys if k.kid == old.thumbprint())
    finally:
        rotated.extensions["stepdown.engine"].dispose()
