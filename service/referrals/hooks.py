"""Listeners called after every referral status change, inside the change's transaction.

Register a callable with `STATUS_LISTENERS.append(fn)`; it is called as
`fn(db, referral, event)` after the referral row, its `ReferralEvent` and the audit record are
flushed, before the request commits. Anything it writes (e.g. a webhook outbox row) commits or
rolls back with the change. It must not commit, and should be quick: it runs on the request path.

Called for `send`, `accept`, `decline`, `start`, `hold`, `resume`, `complete`, `fail` and
`cancel` (including cancellations caused by consent withdrawal). Not called when a draft is
created: a draft is private to the referring team.

A listener that reads something for every change can have the change's own statement read it
(on PostgreSQL the change is one statement: one round trip fewer per change). Register
`STATUS_READS[name] = fn(referring_team_id, receiving_organisation_id)`, a function of the
changed row's two columns returning a scalar subquery; the listener then takes the value with
`take_read(db, name, referral.id)`, which answers `NOT_READ` when the change did not read it
(SQLite, or a change made another way): then it runs its own query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models import Referral, ReferralEvent

StatusListener = Callable[[Session, Referral, ReferralEvent], None]
StatusRead = Callable[[sa.ColumnElement, sa.ColumnElement], sa.ScalarSelect]

STATUS_LISTENERS: list[StatusListener] = []
STATUS_READS: dict[str, StatusRead] = {}

NOT_READ = object()
_READS = "stepdown.status_reads"


def keep_reads(db: Session, referral_id: int, values: dict[str, Any]) -> None:
    """What the change's statement read for the listeners (service.referrals.operations)."""
    kept = db.info.setdefault(_READS, {})
    for name, value in values.items():
        kept[(name, referral_id)] = value


def take_read(db: Session, name: str, referral_id: int) -> Any:
    """The value the change read for `name`, once; NOT_READ when it did not."""
    return db.info.get(_READS, {}).pop((name, referral_id), NOT_READ)


def notify_status_change(db: Session, referral: Referral, event: ReferralEvent) -> None:
    for listener in list(STATUS_LISTENERS):
        listener(db, referral, event)
