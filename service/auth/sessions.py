"""Server-side browser sessions: the cookie holds a random token, the row holds the rest.

The row lets the server enforce the idle and absolute timeouts, rotate the id at
sign-in and end the session at sign-out, whichever app process serves the request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, session
from sqlmodel import select

from models import LoginSession, Membership, Organisation, User
from service import clock
from service.auth.principal import Principal
from service.db import get_session

_LAST_SEEN_GRANULARITY = timedelta(seconds=60)


class SessionExpired(Exception):
    """The browser session passed its idle or absolute limit."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User, membership: Membership | None) -> None:
    """Sign the user in with a new session id (the old cookie's data is dropped)."""
    db = get_session()
    old = session.get("sid")
    if old:
        stale = db.get(LoginSession, _hash(old))
        if stale is not None:
            db.delete(stale)
    session.clear()
    token = secrets.token_urlsafe(32)
    now = clock.now()
    db.add(LoginSession(token_hash=_hash(token), user_id=user.id,
                        membership_id=membership.id if membership else None,
                        created_at=now, last_seen_at=now))
    session["sid"] = token
    session.permanent = True


def end() -> None:
    token = session.get("sid")
    if token:
        db = get_session()
        row = db.get(LoginSession, _hash(token))
        if row is not None:
            db.delete(row)
    session.clear()


def current_row() -> LoginSession | None:
    token = session.get("sid")
    if not token:
        return None
    return get_session().get(LoginSession, _hash(token))


def switch_membership(membership: Membership) -> None:
    row = current_row()
    if row is not None:
        row.membership_id = membership.id
        get_session().add(row)


def _touch(token_hash: str, now) -> LoginSession | None:
    """Read the session row and record activity in a short transaction of its own.

    Done before the request's session reads anything: on SQLite a write held open in the
    request's transaction would block the separately committed audit of a refused read, and
    a write committed behind an open read snapshot would make the request's later writes fail.
    Expired rows are deleted here too, so the deletion survives the redirect or 401.
    """
    from service.db import engine

    settings = current_app.config["SETTINGS"]
    idle = timedelta(minutes=settings.SESSION_IDLE_MINUTES)
    absolute = timedelta(hours=settings.SESSION_ABSOLUTE_HOURS)
    table = LoginSession.__table__
    with engine().begin() as connection:
        found = connection.execute(sa.select(table).where(table.c.token_hash == token_hash)).first()
        if found is None:
            return None
        row = LoginSession(**found._mapping)
        if now - row.last_seen_at > idle or now - row.created_at > absolute:
            connection.execute(sa.delete(table).where(table.c.token_hash == token_hash))
            return None
        if now - row.last_seen_at > _LAST_SEEN_GRANULARITY:
            connection.execute(sa.update(table).where(table.c.token_hash == token_hash)
                               .values(last_seen_at=now))
            row.last_seen_at = now
    return row


def principal_from_session() -> Principal | None:
    token = session.get("sid")
    if not token:
        return None
    row = _touch(_hash(token), clock.now())
    if row is None:
        session.clear()
        raise SessionExpired()
    db = get_session()
    user = db.get(User, row.user_id)
    if user is None or not user.is_active:
        stale = db.get(LoginSession, row.token_hash)
        if stale is not None:
            db.delete(stale)
        session.clear()
        raise SessionExpired()
    membership = db.get(Membership, row.membership_id) if row.membership_id else None
    if membership is None or membership.user_id != user.id:
        membership = db.exec(
            select(Membership).where(Membership.user_id == user.id).order_by(Membership.id)
        ).first()
    kind = db.get(Organisation, membership.organisation_id).kind if membership else None
    return Principal.for_membership(user, membership, kind)
