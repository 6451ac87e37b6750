"""The outbox worker: `flask --app service worker [--once]`.

At-least-once delivery with retries and exponential back-off, safe on many nodes:

1. claim: in a short transaction, pick due `pending` messages of registered channels with
   `FOR UPDATE SKIP LOCKED` (PostgreSQL), count the attempt and push `next_attempt_at` a lease
   (settings OUTBOX_LEASE_SECONDS) ahead, commit. Another worker skips them while locked and
   ignores them until the lease runs out; nothing is held open while talking to the network.
2. deliver each message outside any transaction, unless its lease ran out while earlier
   messages of the batch were slow (another worker may have it by now: leave it to them).
3. record: `sent` with `sent_at`, or the error and the next attempt (back-off doubling from
   30 s up to 1 h, with jitter), or `failed` after MAX_ATTEMPTS or a permanent failure.

A worker that dies between delivery and recording leaves the message to be sent again after
the lease (at-least-once); receivers of webhooks get an idempotency key for that reason.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from models import OutboxMessage
from service import clock
from service.jobs.delivery import CHANNELS, PermanentFailure

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # the default of settings OUTBOX_LEASE_SECONDS
BATCH = 50
FLOWS_BATCH = 500


def backoff(attempts: int, *, jitter: float | None = None) -> timedelta:
    """Delay before the next try after `attempts` failures: 30 s, 1 min, 2 min ... capped at 1 h."""
    delay = min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)
    factor = random.uniform(0.8, 1.2) if jitter is None else jitter  # noqa: S311 - not crypto
    return delay * factor


@dataclass
class WorkerResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0  # claimed, but the lease ran out before this worker got to it

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed


def lease_of(settings) -> timedelta:
    seconds = getattr(settings, "OUTBOX_LEASE_SECONDS", None)
    return timedelta(seconds=seconds) if seconds else LEASE


def claim(db: Session, now: datetime, limit: int = BATCH,
          lease: timedelta = LEASE) -> list[OutboxMessage]:
    """Due messages of channels with a handler, leased to this worker (commits)."""
    channels = sorted(CHANNELS)
    query = (sa.select(OutboxMessage)
             .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
                    OutboxMessage.channel.in_(channels))
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
             .limit(limit))
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages = list(db.scalars(query).all())
    for message in messages:
        message.attempts += 1
        message.next_attempt_at = now + lease
        db.add(message)
    db.commit()
    return messages


def _record(db: Session, message_id: int, attempts: int, values: dict) -> None:
    # Only if no other worker took it over after our lease ran out (attempts would differ).
    db.execute(sa.update(OutboxMessage)
               .where(OutboxMessage.id == message_id, OutboxMessage.attempts == attempts,
                      OutboxMessage.status == "pending")
               .values(**values))
    db.commit()


def deliver(db: Session, message: OutboxMessage, settings, result: WorkerResult) -> None:
    try:
        CHANNELS[message.channel](message, settings)
    except PermanentFailure as exc:
        log.warning("outbox %s (%s) failed permanently: %s", message.id, message.topic, exc)
        _record(db, message.id, message.attempts,
                {"status": "failed", "last_error": str(exc)[:1000]})
        result.failed += 1
        return
    except Exception as exc:  # noqa: BLE001 - any delivery error is retried
        error = f"{type(exc).__name__}: {exc}"[:1000]
        if message.attempts >= MAX_ATTEMPTS:
            log.error("outbox %s (%s) failed after %s attempts", message.id, message.topic,
                      message.attempts)
            _record(db, message.id, message.attempts, {"status": "failed", "last_error": error})
            result.failed += 1
        else:
            retry_at = clock.now() + backoff(message.attempts)
            log.info("outbox %s (%s) attempt %s failed; retry at %s", message.id, message.topic,
                     message.attempts, retry_at.isoformat())
            _record(db, message.id, message.attempts,
                    {"last_error": error, "next_attempt_at": retry_at})
            result.retried += 1
        return
    _record(db, message.id, message.attempts,
            {"status": "sent", "sent_at": clock.now(), "last_error": None})
    result.sent += 1


def run_once(session_factory, settings, *, limit: int = BATCH) -> WorkerResult:
    """Claim and deliver one batch."""
    result = WorkerResult()
    with session_factory() as db:
        messages = claim(db, clock.now(), limit, lease_of(settings))
        for message in messages:
            if clock.now() >= message.next_attempt_at:
                log.info("outbox %s: lease ran out before delivery; left for the next claim",
                         message.id)
                result.expired += 1
                continue
            deliver(db, message, settings, result)
    return result


def drain(session_factory, settings, *, limit: int = BATCH) -> WorkerResult:
    """Deliver everything due now (batch after batch) and return."""
    total = WorkerResult()
    while True:
        result = run_once(session_factory, settings, limit=limit)
        total.sent += result.sent
        total.retried += result.retried
        total.failed += result.failed
        total.expired += result.expired
        if result.claimed + result.expired < limit:
            return total


def refresh_flows(session_factory, *, batch: int = FLOWS_BATCH) -> int:
    """Rewrite the flow rows of the referrals changed since the last run (marked by the
    change, see service.flows.facts), a batch per transaction; how many. Safe on many nodes:
    each skips the referrals another holds."""
    from service.flows.facts import refresh_stale_flows

    total = 0
    while True:
        with session_factory() as db:
            done = refresh_stale_flows(db, batch=batch, limit=batch)
            db.commit()
        total += done
        if done < batch:
            return total


def run_forever(session_factory, settings, *, idle_seconds: float = 2.0,
                should_stop=lambda: False) -> None:  # pragma: no cover - a loop around drain
    while not should_stop():
        refreshed = 0
        try:
            result = drain(session_factory, settings)
            refreshed = refresh_flows(session_factory)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
            log.warning("outbox worker: database unavailable; retrying")
            result = WorkerResult()
        if result.claimed == 0 and refreshed == 0:
            time.sleep(idle_seconds)
