"""Engine and one session per request, committed once at the end of the request."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlmodel import Session

from service.config import Settings

_ENGINE_KEY = "stepdown.engine"


def make_engine(settings: Settings) -> sa.Engine:
    url = settings.DATABASE_URL
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_size"] = settings.DB_POOL_SIZE
        kwargs["max_overflow"] = settings.DB_POOL_SIZE
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {
            "options": f"-c statement_timeout={settings.DB_STATEMENT_TIMEOUT_MS}"
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

    return engine


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[_ENGINE_KEY] = make_engine(settings)
    app.teardown_appcontext(_close_session)


def engine() -> sa.Engine:
    return current_app.extensions[_ENGINE_KEY]


def get_session() -> Session:
    """The request's session; operations flush, only the request boundary commits."""
    if "db_session" not in g:
        g.db_session = Session(engine(), expire_on_commit=False)
    return g.db_session


def commit_request_session() -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.commit()
    finally:
        session.close()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
