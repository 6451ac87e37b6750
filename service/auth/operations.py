"""Sign-in use cases: local passwords with lockout, OIDC / NHS CIS2 identities, memberships."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlmodel import Session, select

from models import Membership, User, UserIdentity
from service import clock
from service.auth import cis2
from service.auth.oidc import LoginRefused
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


def sign_in_with_oidc(db: Session, claims: dict, *, is_cis2: bool = False,
                      acr_min: str = "AAL2") -> tuple[User, Membership | None]:
    """The Stepdown user behind verified ID-token claims, and the membership to act in.

    Only an identity (issuer, subject) an org admin registered signs anyone in. For NHS
    CIS2 the selected national role must map to a Stepdown role (Cis2RoleMapping); the
    membership it names is created the first time. Raises LoginRefused otherwise.
    """
    if is_cis2:
        cis2.require_acr(claims, acr_min)
    identity = db.exec(select(UserIdentity).where(
        UserIdentity.issuer == str(claims.get("iss", "")),
        UserIdentity.subject == str(claims.get("sub", "")),
    )).first()
    user = db.get(User, identity.user_id) if identity is not None else None
    if user is None or not user.is_active:
        log.info("OIDC sign-in refused: no active user for this identity")
        raise LoginRefused(
            "no-linked-account",
            "Your account with your organisation is not linked to Stepdown. Ask your "
            "organisation's Stepdown administrator to register it.")
    membership: Membership | None
    if is_cis2:
        try:
            role = cis2.selected_role(claims)
            mapping = cis2.mapping_for(db, role)
        except LoginRefused as exc:
            exc.user = user
            raise
        membership = db.exec(select(Membership).where(
            Membership.user_id == user.id,
            Membership.organisation_id == mapping.organisation_id,
            Membership.team_id == mapping.team_id if mapping.team_id is not None
            else Membership.team_id.is_(None),
            Membership.role == mapping.role,
        )).first()
        if membership is None:
            membership = Membership(user_id=user.id, organisation_id=mapping.organisation_id,
                                    team_id=mapping.team_id, role=mapping.role)
            db.add(membership)
            db.flush()
            log.info("membership %s created from CIS2 role mapping %s", membership.id,
                     mapping.id)
    else:
        memberships = memberships_of(db, user.id)
        membership = memberships[0] if memberships else None
    user.last_login_at = clock.now()
    db.add(user)
    return user, membership
