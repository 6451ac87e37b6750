"""The OAuth2 token endpoint: client-credentials grant (authlib's authorization server).

API clients (ApiClient rows, argon2-hashed secrets) authenticate with HTTP Basic
(`client_secret_basic`) or form fields (`client_secret_post`) and get a short-lived RS256
JWT from `tokens.issue_access_token`; `tokens.principal_from_bearer` verifies it later.
"""

from __future__ import annotations

import logging

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import Flask, current_app
from sqlmodel import select

from models import ApiClient, Organisation
from service.audit import operations as audit
from service.auth import tokens
from service.auth.passwords import verify_password
from service.auth.principal import Principal
from service.db import get_session

log = logging.getLogger(__name__)
_SERVER = "stepdown.oauth_server"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class OAuthClient(ClientMixin):
    """authlib's view of an ApiClient row."""

    def __init__(self, row: ApiClient | None):
        self.row = row

    @property
    def scopes(self) -> list[str]:
        return self.row.scopes.split() if self.row else []

    def get_client_id(self) -> str:
        return self.row.client_id if self.row else ""

    def get_default_redirect_uri(self):  # no redirects in client credentials
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope_to_list(scope) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:  # noqa: ARG002
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        # An unknown or inactive client still costs one argon2 check, so timing reveals nothing.
        ok = verify_password(self.row.secret_hash if self.row else None, client_secret)
        return ok and self.row is not None and self.row.is_active

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:  # noqa: ARG002
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self):
        """Every requested scope must be one the client holds (RFC 6749 §5.2 invalid_scope)."""
        requested = scope_to_list(self.request.payload.scope) or []
        if not set(requested) <= set(self.client.scopes):
            raise InvalidScopeError()


def _query_client(client_id: str) -> OAuthClient:
    row = get_session().exec(select(ApiClient).where(ApiClient.client_id == client_id)).first()
    if row is None or not row.is_active:
        log.info("token request from an unknown or inactive client")
        return OAuthClient(None)
    return OAuthClient(row)


def _generate_token(grant_type, client: OAuthClient, user=None, scope=None,  # noqa: ARG001
                    expires_in=None, include_refresh_token=False) -> dict:  # noqa: ARG001
    scopes = client.get_allowed_scope(scope).split()
    access_token, ttl = tokens.issue_access_token(client.row, scopes)
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl,
            "scope": " ".join(scopes)}


def _save_token(token: dict, request) -> None:  # noqa: ARG001
    """Tokens are self-contained JWTs: nothing is stored, but the issue is audited."""
    client: ApiClient = request.client.row
    db = get_session()
    kind = db.get(Organisation, client.organisation_id).kind
    actor = Principal.for_client(client, token["scope"].split(), kind)
    audit.record(db, actor, "issue-token", "api_client", client.id)
    log.info("access token issued (client %s)", client.id)


def init_app(app: Flask) -> None:
    server = AuthorizationServer()
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    server.register_token_generator("default", _generate_token)
    server.register_grant(ClientCredentialsGrant)
    app.extensions[_SERVER] = server


def create_token_response():
    return current_app.extensions[_SERVER].create_token_response()
