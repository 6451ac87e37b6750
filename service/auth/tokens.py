"""Short-lived RS256 access tokens for API clients, and their verification.

joserfc is authlib's own JOSE implementation (authlib.jose is deprecated in its favour);
it refuses `alg=none` and algorithms we do not list.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from models import ApiClient, Organisation
from service import clock
from service.auth.principal import ClientIdentity, Principal
from service.db import get_session
from service.errors import Unauthorized

log = logging.getLogger(__name__)
ALGORITHMS = ["RS256"]
_KEYS = "stepdown.token_keys"


_VERIFIED_MAX = 4096


class TokenKeys:
    """The current signing key plus earlier public keys still accepted (rotation)."""

    def __init__(self, current: RSAKey, previous: list[RSAKey]):
        self.current = current
        self.keyset = KeySet([current, *previous])
        self._verified: dict[str, jwt.Token] = {}

    def decode(self, token: str) -> jwt.Token:
        """The token with its signature verified against these keys (RS256 only).

        Tokens already verified by this process are remembered (at most _VERIFIED_MAX, then
        forgotten together): the same bytes verify the same way against the same keys, and a
        client sends one token with every request until it expires. Only the signature is
        remembered: the caller checks the claims (expiry) and the client on every use."""
        decoded = self._verified.get(token)
        if decoded is None:
            decoded = jwt.decode(token, self.keyset, algorithms=ALGORITHMS)
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = decoded
        return decoded

    def jwks(self) -> dict:
        return self.keyset.as_dict(private=False)


def _load_key(path: Path, private: bool) -> RSAKey:
    key = RSAKey.import_key(path.read_bytes())
    if private and not key.is_private:
        raise RuntimeError("TOKEN_PRIVATE_KEY_FILE holds no private key")
    return RSAKey.import_key(key.as_dict(private=private),
                             parameters={"use": "sig", "alg": "RS256", "kid": key.thumbprint()})


def init_app(app, settings) -> None:
    if settings.TOKEN_PRIVATE_KEY_FILE:
        path = Path(settings.TOKEN_PRIVATE_KEY_FILE)
        if not path.exists():
            if settings.is_production:
                raise RuntimeError("TOKEN_PRIVATE_KEY_FILE does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(RSAKey.generate_key(2048).as_pem(private=True).decode())
            path.chmod(0o600)
        current = _load_key(path, private=True)
    else:
        # Development and tests: a key for this process only.
        generated = RSAKey.generate_key(2048)
        current = RSAKey.import_key(generated.as_dict(private=True),
                                    parameters={"use": "sig", "alg": "RS256",
                                                "kid": generated.thumbprint()})
    previous = [
        _load_key(Path(p.strip()), private=False)
        for p in settings.TOKEN_PREVIOUS_PUBLIC_KEY_FILES.split(",") if p.strip()
    ]
    app.extensions[_KEYS] = TokenKeys(current, previous)


def keys() -> TokenKeys:
    return current_app.extensions[_KEYS]


def issue_access_token(client: ApiClient, scopes: list[str]) -> tuple[str, int]:
    settings = current_app.config["SETTINGS"]
    now = int(clock.now().timestamp())
    ttl = settings.TOKEN_TTL_SECONDS
    claims = {
        "iss": settings.token_issuer,
        "aud": settings.TOKEN_AUDIENCE,
        "sub": client.client_id,
        "client_id": client.client_id,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(16),
    }
    current = keys().current
    token = jwt.encode({"alg": "RS256", "kid": current.kid, "typ": "at+jwt"}, claims, current,
                       algorithms=ALGORITHMS)
    return token, ttl


def _invalid(description: str) -> Unauthorized:
    return Unauthorized(
        "The access token is not valid.",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


# Built once: every API request runs it, and building the statement costs more than running it.
# Core, not the ORM: the client is only read (half the Python of loading it into the session).
_CLIENTS = ApiClient.__table__
_IDENTITY = tuple(field.name for field in dataclasses.fields(ClientIdentity))
_CLIENT_WITH_KIND = (sa.select(*(_CLIENTS.c[name] for name in _IDENTITY), _CLIENTS.c.is_active,
                               Organisation.__table__.c.kind)
                     .join(Organisation.__table__,
                           Organisation.__table__.c.id == _CLIENTS.c.organisation_id)
                     .where(_CLIENTS.c.client_id == sa.bindparam("client_id")))


def principal_from_bearer(token: str) -> Principal:
    settings = current_app.config["SETTINGS"]
    try:
        decoded = keys().decode(token)
    except (JoseError, ValueError) as exc:
        log.info("bearer token refused: %s", type(exc).__name__)
        raise _invalid("signature or format") from None
    if decoded.header.get("typ") != "at+jwt":  # RFC 9068: not an ID token or other JWT
        raise _invalid("token type")
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(clock.now().timestamp()),
        leeway=30,
        iss={"essential": True, "value": settings.token_issuer},
        aud={"essential": True, "value": settings.TOKEN_AUDIENCE},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        log.info("bearer token refused: %s", type(exc).__name__)
        raise _invalid("claims") from None
    # The client is read on every request (one query, with its organisation's kind): a client
    # switched off, or a scope taken away, stops working at once, whichever worker serves it.
    found = get_session().connection().execute(
        _CLIENT_WITH_KIND, {"client_id": claims["sub"]}).first()
    if found is None or not found.is_active:
        raise _invalid("client")
    client = ClientIdentity(*found[:len(_IDENTITY)])
    kind = found.kind
    scopes = [s for s in str(claims.get("scope", "")).split() if s in client.scopes.split()]
    return Principal.for_client(client, scopes, kind)
