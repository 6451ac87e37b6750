"""Sign-in with an OpenID Connect provider (authlib's Flask client), NHS CIS2 included.

The provider is configured by discovery URL, client id and secret (OIDC_* settings). The
authorization-code flow keeps its state, nonce and PKCE verifier in the signed session
cookie, so any app process can finish a sign-in another one started. The ID token is
checked by authlib (signature against the provider's JWKS, issuer, audience, nonce,
expiry) with the service clock; who the person is in Stepdown is then decided by
`operations.sign_in_with_oidc`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from authlib.oidc.core import CodeIDToken
from flask import Flask, current_app, url_for
from joserfc.errors import ExpiredTokenError, JoseError

from service import clock

log = logging.getLogger(__name__)
PROVIDERS = "stepdown.oidc_providers"
OIDC_SCOPES = "openid profile email"
CIS2_SCOPES = "openid profile nationalrbacaccess associatedorgs selectedrole"
ID_TOKEN_LEEWAY_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 10


class LoginRefused(Exception):
    """An OIDC sign-in that must not start a session.

    `reason` is a short code for the audit trail; `message` is safe to show the person.
    """

    def __init__(self, reason: str, message: str, *, user=None, status: int = 403):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.user = user
        self.status = status


@dataclass
class Provider:
    name: str
    label: str
    client: Any  # authlib FlaskOAuth2App
    is_cis2: bool = False
    acr_min: str = "AAL2"
    extra: dict = field(default_factory=dict)

    def redirect_uri(self) -> str:
        base = current_app.config["SETTINGS"].BASE_URL.rstrip("/")
        return base + url_for("auth.oidc_callback", provider=self.name)


def init_app(app: Flask, settings) -> None:
    providers: dict[str, Provider] = {}
    if settings.OIDC_DISCOVERY_URL:
        oauth = OAuth(app)
        scope = CIS2_SCOPES if settings.OIDC_IS_CIS2 else OIDC_SCOPES
        client = oauth.register(
            name=settings.OIDC_NAME,
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET,
            server_metadata_url=settings.OIDC_DISCOVERY_URL,
            client_kwargs={"scope": scope, "code_challenge_method": "S256",
                           "default_timeout": HTTP_TIMEOUT_SECONDS},
        )
        providers[settings.OIDC_NAME] = Provider(
            name=settings.OIDC_NAME, label=settings.OIDC_LABEL, client=client,
            is_cis2=settings.OIDC_IS_CIS2, acr_min=settings.OIDC_ACR_MIN)
    app.extensions[PROVIDERS] = providers


def get_provider(name: str) -> Provider | None:
    return current_app.extensions.get(PROVIDERS, {}).get(name)


def authorize_redirect(provider: Provider):
    """Send the browser to the provider; state, nonce and PKCE verifier go in the session."""
    extra = {}
    if provider.is_cis2:
        from service.auth.cis2 import acr_values  # cis2 builds on this module

        # Choose the role each time; ask for a strong enough authenticator up front (the
        # level in the returned token is still checked).
        extra = {"prompt": "login", "acr_values": acr_values(provider.acr_min)}
    return provider.client.authorize_redirect(provider.redirect_uri(), **extra)


def _id_token_class(now: int) -> type[CodeIDToken]:
    class ClockedIDToken(CodeIDToken):
        """authlib's ID-token checks, against the service clock rather than time.time()."""

        def validate(self, now_=None, leeway=0):  # noqa: ARG002
            super().validate(now=now, leeway=leeway)

    return ClockedIDToken


def _unverified() -> LoginRefused:
    return LoginRefused(
        "invalid-id-token",
        "We could not confirm your sign-in with your organisation's account. Try signing in "
        "again. If this keeps happening, contact your organisation's administrator.",
        status=401)


def complete_sign_in(provider: Provider) -> tuple[dict, dict]:
    """Exchange the code and verify the ID token. Returns (ID-token claims, token response).

    Raises LoginRefused for a provider error, a state mismatch, or any ID token that is
    not signed by the provider, not issued by it, not for us, replayed or expired.
    """
    client = provider.client
    try:
        metadata = client.load_server_metadata()
        options = {
            "iss": {"essential": True, "value": metadata.get("issuer")},
            "aud": {"essential": True, "value": client.client_id},
        }
        token = client.authorize_access_token(
            claims_options=options,
            claims_cls=_id_token_class(int(clock.now().timestamp())),
            leeway=ID_TOKEN_LEEWAY_SECONDS,
        )
    except MismatchingStateError:
        raise LoginRefused(
            "state-mismatch",
            "Your sign-in could not be matched to this browser, or took too long. "
            "Start again from the sign-in page.", status=400) from None
    except ExpiredTokenError:
        log.info("OIDC sign-in refused: ID token expired")
        raise LoginRefused("id-token-expired", _unverified().message, status=401) from None
    except JoseError as exc:
        claim = getattr(exc, "claim", None)
        log.info("OIDC sign-in refused: %s %s", type(exc).__name__, claim or "")
        reason = f"id-token-{claim}" if claim else "invalid-id-token"
        raise LoginRefused(reason, _unverified().message, status=401) from None
    except OAuthError as exc:
        log.info("OIDC sign-in refused by the provider: %s", exc.error)
        raise LoginRefused(
            "provider-error",
            "Your organisation's sign-in service did not sign you in. Try again.",
            status=401) from None
    except (requests.RequestException, ValueError) as exc:
        log.warning("OIDC provider unreachable or answered badly: %s", type(exc).__name__)
        raise LoginRefused(
            "provider-unavailable",
            "Your organisation's sign-in service is not available at the moment. "
            "Try again later.", status=503) from None
    claims = token.get("userinfo")
    if not claims:  # no ID token (or no nonce kept): nothing was verified
        raise _unverified()
    return dict(claims), token


def fetch_userinfo(provider: Provider, token: dict, subject: str) -> dict:
    """Claims from the provider's UserInfo endpoint (CIS2 returns RBAC roles there)."""
    metadata = provider.client.load_server_metadata()
    if not metadata.get("userinfo_endpoint"):
        return {}
    try:
        info = dict(provider.client.userinfo(token=token))
    except (requests.RequestException, OAuthError, ValueError) as exc:
        log.warning("OIDC userinfo failed: %s", type(exc).__name__)
        return {}
    if info.get("sub") != subject:  # OIDC Core 5.3.4: must be the same person
        log.warning("OIDC userinfo subject does not match the ID token; ignored")
        return {}
    return info
