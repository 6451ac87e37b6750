"""Engine and one session per request, committed once at the end of the request."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlmodel import Session

from service.config import Settings

_ENGINE_KEY = "stepdown.engine"
_FLOWS_ENGINE_KEY = "stepdown.flows_engine"


def make_engine(settings: Settings, url: str | None = None) -> sa.Engine:
    url = url or settings.DATABASE_URL
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_size"] = settings.DB_POOL_SIZE
        kwargs["max_overflow"] = settings.DB_MAX_OVERFLOW
        # Wait this long for a free connection, then answer 503 (shorter than gunicorn's timeout,
        # which would kill the worker instead).
        kwargs["pool_timeout"] = settings.DB_POOL_TIMEOUT_SECONDS
        kwargs["pool_recycle"] = 1800
        kwargs["connect_args"] = {
            "application_name": "stepdown",
            "connect_timeout": 10,
            # A runaway statement, a wait on a row lock, or a transaction left open are ended by
            # PostgreSQL, not left holding locks and connections.
            "options": " ".join((
                f"-c statement_timeout={settings.DB_STATEMENT_TIMEOUT_MS}",
                f"-c lock_timeout={settings.DB_LOCK_TIMEOUT_MS}",
                "-c idle_in_transaction_session_timeout="
                f"{settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            )),
        }
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    else:
        _ping_when_idle(engine, settings.DB_PING_AFTER_IDLE_MS / 1000)
    return engine


_CHECKED_IN = "stepdown.checked_in"


def _ping_when_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """A pooled connection the database (or a proxy, or a failover) dropped is replaced on
    checkout: pinged first if it has been idle longer than `idle_seconds` (what SQLAlchemy's
    `pool_pre_ping` does on every checkout, one round trip per request). A connection back in
    the pool moments ago was alive then; if the database went away since, the request fails
    with 503 and the pool replaces every connection it holds (SQLAlchemy invalidates the pool on
    a disconnect), as the ping would have found the database gone too. HikariCP's
    `aliveBypassWindowMs` (500 ms) is the same rule."""

    @sa.event.listens_for(engine, "checkin")
    def _note_checkin(_dbapi_connection, record) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return  # new (connected just now), or in use moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool replaces it (and every connection older than now) and tries again.
            error = sa.exc.DisconnectionError("the pooled connection was dropped")
            error.invalidate_pool = True
            raise error from exc


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[_ENGINE_KEY] = make_engine(settings)
    if settings.FLOWS_DATABASE_URL:
        app.extensions[_FLOWS_ENGINE_KEY] = make_engine(settings, settings.FLOWS_DATABASE_URL)
    app.teardown_appcontext(_close_session)


def engine() -> sa.Engine:
    return current_app.extensions[_ENGINE_KEY]


def get_session() -> Session:
    """The request's session; operations flush, only the request boundary commits."""
    if "db_session" not in g:
        g.db_session = Session(engine(), expire_on_commit=False)
    return g.db_session


def get_flows_session() -> Session:
    """Where the flows report reads its figures: a session on the read replica
    (FLOWS_DATABASE_URL) when one is set, else the request's own session. It only reads, so
    it is never committed; it closes with the request."""
    flows_engine = current_app.extensions.get(_FLOWS_ENGINE_KEY)
    if flows_engine is None:
        return get_session()
    if "flows_session" not in g:
        g.flows_session = Session(flows_engine, expire_on_commit=False)
    return g.flows_session


def commit_request_session() -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.commit()
    finally:
        session.close()


def _close_session(_exc: BaseException | None) -> None:
    for name in ("db_session", "flows_session"):
        session = g.pop(name, None)
        if session is not None:
            session.rollback()
            session.close()
