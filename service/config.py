"""Typed settings read from the environment and checked at start-up."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - refused in production
ENVIRONMENTS = ("development", "test", "production")


class ConfigError(RuntimeError):
    """A missing or bad setting; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class Settings:
    ENV: str = "development"
    DATABASE_URL: str = "sqlite:///instance/stepdown.db"
    # Optional read replica for the flows report's figures; empty: the primary serves them.
    FLOWS_DATABASE_URL: str = ""
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    BASE_URL: str = "http://127.0.0.1:5000"
    # Browser sessions
    SESSION_IDLE_MINUTES: int = 30
    SESSION_ABSOLUTE_HOURS: int = 12
    LOGIN_MAX_FAILURES: int = 5
    LOGIN_LOCKOUT_MINUTES: int = 15
    WTF_CSRF_ENABLED: bool = True
    # OIDC (one provider; CIS2 is an OIDC provider with extra claims)
    OIDC_NAME: str = "oidc"
    OIDC_LABEL: str = "Sign in with your organisation's account"
    OIDC_DISCOVERY_URL: str = ""
    OIDC_CLIENT_ID: str = ""
    OIDC_CLIENT_SECRET: str = ""
    OIDC_IS_CIS2: bool = False
    OIDC_ACR_MIN: str = "AAL2"
    # API tokens (OAuth2 client credentials, RS256 JWTs)
    TOKEN_PRIVATE_KEY_FILE: str = ""
    TOKEN_PREVIOUS_PUBLIC_KEY_FILES: str = ""  # comma separated; still published in JWKS
    TOKEN_ISSUER: str = ""
    TOKEN_AUDIENCE: str = "stepdown-api"  # noqa: S105 - an audience name, not a secret
    TOKEN_TTL_SECONDS: int = 600
    # Notifications
    EMAIL_BACKEND: str = "log"  # log | smtp | notify
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 25
    MAIL_FROM: str = "stepdown@localhost"
    NOTIFY_API_KEY: str = ""
    # How long a worker owns the messages it claimed: after a crash another worker sends them
    # again once this has passed. Keep it well above a delivery's timeout (webhooks 10 s, SMTP
    # 15 s) so a slow but live delivery is not sent twice.
    OUTBOX_LEASE_SECONDS: int = 300
    # Rate limits
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_ENABLED: bool = True
    # Database
    # Per process (each gunicorn worker, sweep or outbox worker has its own pool).
    DB_POOL_SIZE: int = 5
    DB_MAX_OVERFLOW: int = 5
    DB_POOL_TIMEOUT_SECONDS: int = 10
    # A pooled connection idle longer than this is pinged before use (replaced if dead); one
    # used more recently is not (HikariCP's aliveBypassWindowMs). 0: ping on every checkout.
    DB_PING_AFTER_IDLE_MS: int = 500
    # PostgreSQL ends these itself (0 turns one off).
    DB_STATEMENT_TIMEOUT_MS: int = 30000
    DB_LOCK_TIMEOUT_MS: int = 10000
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: int = 0  # production app hosts: 60000 (docs/deploy.md)
    LOG_LEVEL: str = "INFO"
    # Number of proxies (load balancers) in front of the app whose X-Forwarded-* we trust.
    PROXY_FIX_HOPS: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.ENV == "production"

    @property
    def token_issuer(self) -> str:
        return self.TOKEN_ISSUER or self.BASE_URL


def _coerce(name: str, raw: Any, target: type) -> Any:
    if target is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if target is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    return str(raw)


def load_settings(
    environ: Mapping[str, str] | None = None, override: Mapping[str, Any] | None = None
) -> Settings:
    """Build Settings from environment variables (and an override dict), then validate."""
    environ = os.environ if environ is None else environ
    override = dict(override or {})
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(Settings)}
    for f in dataclasses.fields(Settings):
        if f.name == "extra":
            continue
        target = {"int": int, "bool": bool}.get(str(types[f.name]), str)
        env_name = "STEPDOWN_ENV" if f.name == "ENV" else f.name
        if f.name in override:
            values[f.name] = _coerce(f.name, override.pop(f.name), target)
        elif env_name in environ:
            values[f.name] = _coerce(env_name, environ[env_name], target)
    settings = Settings(**values, extra=override)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.ENV not in ENVIRONMENTS:
        raise ConfigError(f"STEPDOWN_ENV must be one of {', '.join(ENVIRONMENTS)}")
    if not settings.DATABASE_URL.startswith(("sqlite:", "postgresql")):
        raise ConfigError("DATABASE_URL must be an sqlite:// or postgresql+psycopg:// URL")
    if settings.FLOWS_DATABASE_URL and not settings.FLOWS_DATABASE_URL.startswith(
            ("sqlite:", "postgresql")):
        raise ConfigError("FLOWS_DATABASE_URL must be empty or an sqlite:// or "
                          "postgresql+psycopg:// URL")
    if settings.EMAIL_BACKEND not in ("log", "smtp", "notify"):
        raise ConfigError("EMAIL_BACKEND must be log, smtp or notify")
    if settings.EMAIL_BACKEND == "notify" and not settings.NOTIFY_API_KEY:
        raise ConfigError("NOTIFY_API_KEY is required when EMAIL_BACKEND=notify")
    if settings.OIDC_DISCOVERY_URL and not (settings.OIDC_CLIENT_ID and settings.OIDC_CLIENT_SECRET):
        raise ConfigError("OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are required with OIDC_DISCOVERY_URL")
    if settings.OIDC_ACR_MIN not in ("AAL1", "AAL2", "AAL3"):
        raise ConfigError("OIDC_ACR_MIN must be AAL1, AAL2 or AAL3")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", settings.OIDC_NAME):
        raise ConfigError("OIDC_NAME must be lower-case letters, digits and hyphens (it is in URLs)")
    if settings.TOKEN_TTL_SECONDS <= 0 or settings.TOKEN_TTL_SECONDS > 3600:
        raise ConfigError("TOKEN_TTL_SECONDS must be between 1 and 3600 (access tokens are short-lived)")
    if not settings.RATELIMIT_STORAGE_URI.startswith(("memory://", "redis://", "rediss://",
                                                      "redis+sentinel://", "redis+cluster://")):
        raise ConfigError("RATELIMIT_STORAGE_URI must be memory:// or a redis:// URL")
    if settings.OUTBOX_LEASE_SECONDS <= 0:
        raise ConfigError("OUTBOX_LEASE_SECONDS must be positive")
    if settings.DB_POOL_SIZE <= 0 or settings.DB_MAX_OVERFLOW < 0 \
            or settings.DB_POOL_TIMEOUT_SECONDS <= 0:
        raise ConfigError("DB_POOL_SIZE and DB_POOL_TIMEOUT_SECONDS must be positive, "
                          "DB_MAX_OVERFLOW 0 or more")
    for name in ("DB_STATEMENT_TIMEOUT_MS", "DB_LOCK_TIMEOUT_MS",
                 "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "DB_PING_AFTER_IDLE_MS"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must be 0 (off) or more milliseconds")
    if settings.SESSION_IDLE_MINUTES <= 0 or settings.SESSION_ABSOLUTE_HOURS <= 0:
        raise ConfigError("session timeouts must be positive")
    if settings.is_production:
        if settings.SECRET_KEY == DEFAULT_SECRET_KEY or len(settings.SECRET_KEY) < 32:
            raise ConfigError("SECRET_KEY must be set to a random value of 32+ characters in production")
        if settings.DATABASE_URL.startswith("sqlite"):
            raise ConfigError("DATABASE_URL must point at PostgreSQL in production, not SQLite")
        if settings.FLOWS_DATABASE_URL.startswith("sqlite"):
            raise ConfigError("FLOWS_DATABASE_URL must point at PostgreSQL in production")
        if not settings.TOKEN_PRIVATE_KEY_FILE:
            raise ConfigError("TOKEN_PRIVATE_KEY_FILE is required in production")
        if not settings.BASE_URL.startswith("https://"):
            raise ConfigError("BASE_URL must be https:// in production")
        if settings.OUTBOX_LEASE_SECONDS < 60:
            raise ConfigError("OUTBOX_LEASE_SECONDS must be 60 or more in production (longer than "
                              "any delivery takes, or a slow delivery is sent twice)")
        if settings.OIDC_DISCOVERY_URL and not settings.OIDC_DISCOVERY_URL.startswith("https://"):
            raise ConfigError("OIDC_DISCOVERY_URL must be https:// in production")
