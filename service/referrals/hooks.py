"""Listeners called after every referral status change, inside the change's transaction.

Register a callable with `STATUS_LISTENERS.append(fn)`; it is called as
`fn(db, referral, event)` after the referral row, its `ReferralEvent` and the audit record are
flushed, before the request commits. Anything it writes (e.g. a webhook outbox row) commits or
rolls back with the change. It must not commit, and should be quick: it runs on the request path.

Called for `send`, `accept`, `decline`, `start`, `hold`, `resume`, `complete`, `fail` and
`cancel` (including cancellations caused by consent withdrawal). Not called when a draft is
created: a draft is private to the referring team.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from models import Referral, ReferralEvent

StatusListener = Callable[[Session, Referral, ReferralEvent], None]

STATUS_LISTENERS: list[StatusListener] = []


def notify_status_change(db: Session, referral: Referral, event: ReferralEvent) -> None:
    for listener in list(STATUS_LISTENERS):
        listener(db, referral, event)
