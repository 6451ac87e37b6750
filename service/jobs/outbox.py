"""Writing to the transactional outbox (DESIGN §5 rule 5).

Operations call `enqueue_email` (or `enqueue` for other channels) inside the caller's
transaction: the message exists if and only if the change that caused it commits. The
worker (`service.jobs.worker`) delivers it later, at least once.

Email carries no personal data: what happened, and a link to the record. Subjects are
checked for anything that looks like an NHS number or a date of birth as a last guard.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlmodel import Session

from models import OutboxMessage
from service import clock

__all__ = ["email_body", "email_params", "emails_to", "enqueue", "enqueue_email", "enqueue_emails",
           "link_for"]

# Ten digits (optionally 3-3-4 spaced) or a date: never in an email.
_LOOKS_PERSONAL = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")


def link_for(link_path: str) -> str:
    """An absolute link to a page of the service (settings BASE_URL + path)."""
    if not link_path.startswith("/"):
        raise ValueError("link_path must start with /")
    base = "http://127.0.0.1:5000"
    if has_app_context():
        base = current_app.config["SETTINGS"].BASE_URL
    return base.rstrip("/") + link_path


def email_body(subject: str, link: str) -> str:
    return (
        f"{subject}\n\n"
        f"Open Stepdown to see the details: {link}\n\n"
        "You need to sign in. This email has no personal details in it by design.\n"
        "Stepdown is not an emergency channel: if someone is in immediate danger, call 999.\n"
    )


def enqueue(db: Session, *, channel: str, topic: str, recipient: str, payload: dict[str, Any],
            webhook_id: int | None = None, now: datetime | None = None) -> OutboxMessage:
    """Any channel (`email`, `webhook`): one row in the caller's transaction."""
    if not recipient:
        raise ValueError("an outbox message needs a recipient")
    at = now or clock.now()
    message = OutboxMessage(
        channel=channel, topic=topic[:60], recipient=recipient, payload=json.dumps(payload),
        status="pending", attempts=0, next_attempt_at=at, created_at=at, webhook_id=webhook_id,
    )
    db.add(message)
    return message


def enqueue_email(db: Session, *, to: str, topic: str, subject: str, link_path: str,
                  now: datetime | None = None) -> OutboxMessage:
    """An email to a staff address or team inbox: a subject saying what happened, and a link.

    `subject` must not name the person (no names, NHS numbers, dates of birth); it is also
    the first line of the body, followed by the link. Written in the caller's transaction
    (not flushed: the caller's flush or commit writes it).
    """
    return enqueue(db, channel="email", topic=topic, recipient=to.strip().lower(),
                   payload=_email_payload(subject, link_path), now=now)


def _email_payload(subject: str, link_path: str) -> dict:
    """What every email carries: the subject (refused if it looks personal), the subject again
    as the body's first line, and the link."""
    if _LOOKS_PERSONAL.search(subject):
        raise ValueError("email subjects must not contain NHS numbers or dates")
    link = link_for(link_path)
    return {"subject": subject, "body": email_body(subject, link), "link": link}


def emails_to(addresses: sa.Select, prefix: str = "") -> sa.Insert:
    """One email to each address `addresses` selects (a one-column SELECT), as ONE
    INSERT … SELECT: build it once, run it with `email_params(prefix=…)` (or use it as a CTE of
    a larger statement). Its bind parameters: `{prefix}topic`, `{prefix}payload`, `{prefix}at`."""
    table = OutboxMessage.__table__
    at = sa.bindparam(f"{prefix}at", type_=table.c.created_at.type)
    address = addresses.selected_columns[0]
    row = addresses.with_only_columns(
        sa.literal("email"), sa.bindparam(f"{prefix}topic", type_=table.c.topic.type),
        sa.func.lower(sa.func.trim(address)),
        sa.bindparam(f"{prefix}payload", type_=table.c.payload.type),
        sa.literal("pending"), sa.literal(0), at, at)
    return sa.insert(table).from_select(
        ["channel", "topic", "recipient", "payload", "status", "attempts", "next_attempt_at",
         "created_at"], row)


def email_params(*, topic: str, subject: str, link_path: str, now: datetime | None = None,
                 prefix: str = "") -> dict:
    """The parameters of an `emails_to` statement: the same email as `enqueue_email`."""
    return {f"{prefix}topic": topic[:60], f"{prefix}at": now or clock.now(),
            f"{prefix}payload": json.dumps(_email_payload(subject, link_path))}


def enqueue_emails(db: Session, statement: sa.Insert, params: dict, **email) -> None:
    """Run an `emails_to` statement (with its own `params`) in the caller's transaction, one
    statement whatever the number of addresses. `email`: topic, subject, link_path (, now)."""
    db.flush()  # as autoflush would, before a statement on the session's connection
    db.connection().execute(statement, {**params, **email_params(**email)})
