"""Sign-in use cases: local passwords with lockout, membership switching."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import Session, select

from models import Membership, User
from service import clock
from service.auth.passwords import verify_password

log = logging.getLogger(__name__)


class SignInRefused(Exception):
    """Wrong email or password, or the account is locked; the message is safe to show."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def authenticate_local(db: Session, email: str, password: str, *, max_failures: int,
                       lockout_minutes: int) -> User:
    """Check a local password; repeated failures lock the account for a while."""
    now = clock.now()
    user = db.exec(select(User).where(User.email == normalise_email(email))).first()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        verify_password(None, password)  # same work as a real check
        log.info("sign-in refused: account locked (user %s)", user.id)
        raise SignInRefused("locked")
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= max_failures:
                user.locked_until = now + timedelta(minutes=lockout_minutes)
                user.failed_logins = 0
                log.info("account locked after repeated failures (user %s)", user.id)
            db.add(user)
        raise SignInRefused("invalid")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.add(user)
    return user


def memberships_of(db: Session, user_id: int) -> list[Membership]:
    return list(db.exec(select(Membership).where(Membership.user_id == user_id)
                        .order_by(Membership.id)).all())
