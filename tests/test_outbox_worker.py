"""The outbox worker: delivery over real SMTP on loopback, retries with back-off, failure after
the last attempt, channels without a handler left alone, and parallel workers on PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from models import OutboxMessage
from service.jobs import delivery, worker
from service.jobs.outbox import enqueue, enqueue_email


class Inbox:
    """An aiosmtpd handler keeping what it received."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ARG002 - aiosmtpd API
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                              "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def _settings(app, **overrides):
    from dataclasses import replace

    return replace(app.config["SETTINGS"], **overrides)


def _factory(app):
    engine = app.extensions["stepdown.engine"]
    return lambda: Session(engine, expire_on_commit=False)


def _enqueue(app, db, n: int = 1, to: str = "team@example.org"):
    with app.app_context():
        for i in range(n):
            enqueue_email(db, to=to, topic="flag.raised", subject=f"Stepdown: flag {i} raised",
                          link_path=f"/flags/{i}")
        db.commit()


def _rows(db):
    db.expire_all()
    return list(db.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def test_smtp_delivery_to_a_real_server_on_loopback(app, db, smtp_server):
    controller, inbox = smtp_server
    _enqueue(app, db, 2)
    settings = _settings(app, EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1",
                         SMTP_PORT=controller.port, MAIL_FROM="stepdown@example.org")
    with app.app_context():
        result = worker.drain(_factory(app), settings)
    assert (result.sent, result.retried, result.failed) == (2, 0, 0)
    assert len(inbox.messages) == 2
    assert inbox.messages[0]["to"] == ["team@example.org"]
    assert "Subject: Stepdown: flag 0 raised" in inbox.messages[0]["data"]
    assert "http://localhost/flags/0" in inbox.messages[0]["data"]
    for row in _rows(db):
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
        assert row.sent_at is not None
    # Nothing is sent twice.
    with app.app_context():
        assert worker.drain(_factory(app), settings).claimed == 0
    assert len(inbox.messages) == 2


def test_log_backend_logs_topic_and_recipient_only(app, db, caplog):
    _enqueue(app, db, 1)
    caplog.set_level("INFO", logger="service.jobs.delivery")
    with app.app_context():
        result = worker.drain(_factory(app), _settings(app, EMAIL_BACKEND="log"))
    assert result.sent == 1
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "service.jobs.delivery")
    assert "flag.raised" in logged and "team@example.org" in logged
    assert "Stepdown: flag 0" not in logged  # not even the subject


def test_retries_back_off_then_fail(app, db, clock):
    _enqueue(app, db, 1)
    settings = _settings(app, EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())
    with app.app_context():
        result = worker.drain(_factory(app), settings)  # nobody listens on that port
    assert result.retried == 1
    [row] = _rows(db)
    assert row.status == "pending" and row.attempts == 1
    assert "ConnectionRefusedError" in row.last_error
    delay = row.next_attempt_at - clock.now()
    assert timedelta(seconds=24) <= delay <= timedelta(seconds=36)
    with app.app_context():  # not due yet
        assert worker.drain(_factory(app), settings).claimed == 0
    for _ in range(worker.MAX_ATTEMPTS - 1):
        clock.advance(hours=2)
        with app.app_context():
            worker.drain(_factory(app), settings)
    [row] = _rows(db)
    assert (row.status, row.attempts) == ("failed", worker.MAX_ATTEMPTS)
    assert row.sent_at is None


def test_backoff_doubles_and_is_capped():
    assert worker.backoff(1, jitter=1.0) == timedelta(seconds=30)
    assert worker.backoff(2, jitter=1.0) == timedelta(minutes=1)
    assert worker.backoff(4, jitter=1.0) == timedelta(minutes=4)
    assert worker.backoff(20, jitter=1.0) == timedelta(hours=1)


def test_permanent_failures_are_not_retried(app, db, monkeypatch):
    _enqueue(app, db, 1)

    def refuse(message, settings):  # noqa: ARG001
        raise delivery.PermanentFailure("recipient refused")

    monkeypatch.setitem(delivery.CHANNELS, "email", refuse)
    with app.app_context():
        assert worker.drain(_factory(app), app.config["SETTINGS"]).failed == 1
    [row] = _rows(db)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "recipient refused")


def test_channels_without_a_handler_wait_until_one_is_registered(app, db, monkeypatch):
    monkeypatch.delitem(delivery.CHANNELS, "webhook", raising=False)
    with app.app_context():
        enqueue(db, channel="webhook", topic="referral.status", recipient="https://example.org/hook",
                payload={"id": 1})
        db.commit()
        assert worker.drain(_factory(app), app.config["SETTINGS"]).claimed == 0
    [row] = _rows(db)
    assert (row.status, row.attempts) == ("pending", 0)
    delivered = []
    monkeypatch.setitem(delivery.CHANNELS, "webhook",
                        lambda message, settings: delivered.append(json.loads(message.payload)))
    with app.app_context():
        assert worker.drain(_factory(app), app.config["SETTINGS"]).sent == 1
    assert delivered == [{"id": 1}]


def test_cli_worker_once(app, db):
    _enqueue(app, db, 3)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "outbox: 3 sent, 0 to retry, 0 failed" in result.output


def test_notify_backend_posts_to_the_rest_api(monkeypatch):
    calls = []

    class Response:
        status_code = 201

        def raise_for_status(self):
            return None

    def post(url, **kwargs):
        calls.append((url, kwargs))
        return Response()

    monkeypatch.setattr(delivery.requests, "post", post)
    key = "stepdown-test-" + "11111111-2222-3333-4444-555555555555" + "-" + \
        "66666666-7777-8888-9999-000000000000"
    backend = delivery.NotifyBackend(key, "template-1")
    assert backend.service_id == "11111111-2222-3333-4444-555555555555"
    backend.send(to="team@example.org", subject="S", body="B", topic="flag.raised")
    url, kwargs = calls[0]
    assert url == delivery.NOTIFY_URL
    assert kwargs["json"]["email_address"] == "team@example.org"
    assert kwargs["json"]["personalisation"] == {"subject": "S", "body": "B"}
    assert kwargs["headers"]["Authorization"].startswith("Bearer ey")
    # The token verifies with the key's secret (HS256), as Notify checks it.
    import base64
    import hashlib
    import hmac

    token = kwargs["headers"]["Authorization"].removeprefix("Bearer ")
    header, claims, signature = token.split(".")
    expected = hmac.new(b"66666666-7777-8888-9999-000000000000", f"{header}.{claims}".encode(),
                        hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert json.loads(base64.urlsafe_b64decode(claims + "=="))["iss"] == backend.service_id


@pytest.mark.postgres
def test_parallel_workers_deliver_each_message_once(app, db, monkeypatch):
    _enqueue(app, db, 40)
    delivered, lock = [], threading.Lock()

    def slow(message, settings):  # noqa: ARG001
        with lock:
            delivered.append(message.id)

    monkeypatch.setitem(delivery.CHANNELS, "email", slow)
    barrier = threading.Barrier(4)

    def run():
        with app.app_context():
            barrier.wait(timeout=30)
            worker.drain(_factory(app), app.config["SETTINGS"], limit=3)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(delivered) == sorted(set(delivered)) and len(delivered) == 40
    assert all(row.status == "sent" and row.attempts == 1 for row in _rows(db))
