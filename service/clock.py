"""Time is injected so timers and sessions can be tested."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, has_app_context

_KEY = "stepdown.clock"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        from datetime import timedelta

        self.at = self.at + timedelta(**delta)


def now() -> datetime:
    if has_app_context():
        return current_app.extensions.get(_KEY, _SYSTEM).now()
    return _SYSTEM.now()


def init_app(app, clock=None) -> None:
    app.extensions[_KEY] = clock or _SYSTEM


_SYSTEM = SystemClock()
