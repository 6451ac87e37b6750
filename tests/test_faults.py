"""Faults (issue 8): a request that fails after its writes leaves nothing behind; a constraint
the operation did not check is a 409; the database going away gives 503 with Retry-After and
the service recovers without a restart; a worker killed mid-delivery is replaced and the message
is delivered once more, never lost and never sent a third time."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import (
    ApiClient,
    AuditEvent,
    IdempotencyRecord,
    OutboxMessage,
    Referral,
    ReferralEvent,
    WebhookSubscription,
)
from service import create_app
from service.audit import operations as audit
from service.jobs import delivery, worker
from service.jobs.outbox import enqueue
from service.referrals import operations as referral_ops
from tests.conftest import signed_in_client
from tests.process_support import (
    TcpProxy,
    WebhookReceiver,
    running_processes,
    service_env,
    wait_until,
)
from tests.test_log_hygiene import _record_text
from tests.test_referral_support import (
    HANDOVER,
    act,
    create_referral,
    etag,
    ok,
    referral_row,
)
from tests.test_referral_support import world as _world_fixture

world = _world_fixture
processes = running_processes  # the fixture, by the name the tests use

TRACKED = (Referral, ReferralEvent, AuditEvent, OutboxMessage, IdempotencyRecord)


def _counts(db) -> dict[str, int]:
    db.expire_all()
    return {model.__name__: db.scalar(sa.select(sa.func.count()).select_from(model))
            for model in TRACKED}


def _assert_clean_500(response, *personal: str) -> None:
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    for value in personal:
        assert value not in text
    assert response.get_json()["request_id"]


# ---- A request that fails after its writes --------------------------------------------------

def test_a_create_that_fails_after_its_writes_leaves_nothing_behind(world, monkeypatch, caplog):
    person = world.person

    def fails_while_answering(*_args, **_kwargs):
        raise RuntimeError(f"answer failed for {person.given_name} {person.nhs_number}")

    before = _counts(world.db)
    monkeypatch.setattr(referral_ops, "referral_view", fails_while_answering)
    response = world.coordinator.post(
        "/api/v1/referrals", json={"journey_id": world.journey.id, "offer_id": world.offer.id,
                                   **HANDOVER},
        headers={"Idempotency-Key": "fails-late-1"})
    _assert_clean_500(response, person.given_name, person.nhs_number, HANDOVER["crisis_plan"])
    # Logged with where it failed, but not the exception's message (it named the person).
    logged = "\n".join(_record_text(r) for r in caplog.records if r.name == "service.errors")
    assert "fails_while_answering" in logged and "RuntimeError" in logged
    assert person.given_name not in logged and person.nhs_number not in logged
    # The referral, its event, its audit row and the idempotency record had been flushed.
    assert _counts(world.db) == before
    # The key was not used up: the retry (once the fault is gone) creates the referral.
    monkeypatch.undo()
    retry = world.coordinator.post(
        "/api/v1/referrals", json={"journey_id": world.journey.id, "offer_id": world.offer.id,
                                   **HANDOVER},
        headers={"Idempotency-Key": "fails-late-1"})
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers


def test_a_send_that_fails_after_its_writes_leaves_the_draft_as_it_was(world, monkeypatch):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]
    draft = referral_row(world.db, rid)
    notify = referral_ops.notify_status_change
    written = []

    def listeners_then_fail(db, referral, event):
        notify(db, referral, event)  # the change, its event, audit row, team inbox emails and
        db.flush()  # webhooks are written; then the request fails
        written.append(db.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)))
        raise RuntimeError(f"listener failed for {world.person.family_name}")

    tag = etag(world.coordinator, rid)
    before = _counts(world.db)
    monkeypatch.setattr(referral_ops, "notify_status_change", listeners_then_fail)
    response = act(world.coordinator, rid, "send", if_match=tag)
    assert written and written[0] > before["OutboxMessage"]  # the inbox email was written
    _assert_clean_500(response, world.person.family_name)
    after = referral_row(world.db, rid)
    assert (after.status, after.version, after.sent_at) == ("draft", draft.version, None)
    assert _counts(world.db) == before
    monkeypatch.undo()
    assert ok(act(world.coordinator, rid, "send"))["status"] == "requested"


def test_a_constraint_an_operation_did_not_check_is_a_409_and_rolls_back(world, monkeypatch):
    rid = ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)["id"]

    def duplicate_open_referral(db, actor, referral_id, data):  # noqa: ARG001
        original = db.get(Referral, referral_id)
        audit.record(db, actor, "add-note", "referral", referral_id,
                     person_id=original.person_id)
        db.flush()  # a write that succeeded, then one the database refuses
        db.add(Referral(**{c: getattr(original, c) for c in (
            "journey_id", "person_id", "offer_id", "referring_team_id",
            "receiving_organisation_id", "status", "created_at", "updated_at")}))
        db.flush()  # the one-open-referral index refuses this

    before = _counts(world.db)
    monkeypatch.setattr(referral_ops, "add_note", duplicate_open_referral)
    response = world.coordinator.post(f"/api/v1/referrals/{rid}/notes",
                                      json={"kind": "note", "text": "Spoke to the team"},
                                      headers={"Idempotency-Key": "note-1"})
    assert response.status_code == 409, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "The change conflicts with existing records."
    assert _counts(world.db) == before


def test_a_second_open_referral_to_the_same_offer_is_refused_by_the_index(world):
    ok(create_referral(world.coordinator, world.journey.id, world.offer.id), 201)
    before = _counts(world.db)
    again = create_referral(world.coordinator, world.journey.id, world.offer.id)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    assert "offer_id" in again.get_json()["errors"]
    assert _counts(world.db) == before


# ---- Worker leases ---------------------------------------------------------------------------

def test_a_worker_leaves_a_message_whose_lease_ran_out_during_a_slow_batch(app, db, clock,
                                                                             monkeypatch):
    settings = app.config["SETTINGS"]
    lease = worker.lease_of(settings)
    delivered: list[int] = []

    def slow(message, _settings):
        delivered.append(message.id)
        clock.advance(seconds=lease.total_seconds() + 1)  # this delivery outlived the lease

    monkeypatch.setitem(delivery.CHANNELS, "email", slow)
    with app.app_context():
        first = enqueue(db, channel="email", topic="t", recipient="r", payload={})
        second = enqueue(db, channel="email", topic="t", recipient="r", payload={})
        db.commit()
        engine = app.extensions["stepdown.engine"]
        result = worker.run_once(lambda: Session(engine, expire_on_commit=False), settings)
    assert (result.sent, result.expired) == (1, 1)
    assert delivered == [first.id]
    db.expire_all()
    left = db.get(OutboxMessage, second.id)
    assert (left.status, left.attempts) == ("pending", 1)
    with app.app_context():
        result = worker.drain(lambda: Session(engine, expire_on_commit=False), settings)
    assert result.sent == 1 and delivered == [first.id, second.id]
    db.expire_all()
    assert db.get(OutboxMessage, second.id).attempts == 2


def test_the_lease_is_a_setting_checked_at_start(app_config):
    from service.config import ConfigError, load_settings

    assert load_settings({}, {**app_config, "OUTBOX_LEASE_SECONDS": "45"}).OUTBOX_LEASE_SECONDS \
        == 45
    with pytest.raises(ConfigError, match="OUTBOX_LEASE_SECONDS"):
        load_settings({}, {**app_config, "OUTBOX_LEASE_SECONDS": "0"})


# ---- The database goes away (PostgreSQL through a loopback proxy) ---------------------------

@pytest.fixture
def proxied_app(app, app_config, demo, database_url):  # noqa: ARG001 - demo data first
    """A second app for the same database, reaching it through a proxy the test controls."""
    upstream = sa.engine.make_url(database_url)
    proxy = TcpProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    proxied = create_app({**app_config, "DATABASE_URL": proxy.url_for(database_url),
                          "DB_POOL_SIZE": 2})
    proxied.config["TESTING"] = True
    try:
        yield proxied, proxy
    finally:
        proxied.extensions["stepdown.engine"].dispose()
        proxy.close()


@pytest.mark.postgres
def test_the_database_going_away_gives_503_and_the_service_recovers(proxied_app):
    app, proxy = proxied_app
    coordinator = signed_in_client(app, "coordinator@demo.stepdown.test")
    assert coordinator.get("/readyz").status_code == 200
    assert coordinator.get("/api/v1/referrals?box=outbox").status_code == 200

    proxy.cut()
    ready = coordinator.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["database"] == "unreachable"
    assert coordinator.get("/healthz").status_code == 200  # the process is alive
    for response in (coordinator.get("/api/v1/referrals?box=outbox"),
                     coordinator.post("/api/v1/flags", json={})):
        assert response.status_code == 503, response.get_data(as_text=True)[:300]
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"].isdigit()
        assert "Traceback" not in response.get_data(as_text=True)
        assert "psycopg" not in response.get_data(as_text=True)
    page = coordinator.get("/")
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Retry-After"]
    bearer = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=("demo-epr", "demo-epr-secret"))
    assert bearer.status_code == 503 and bearer.mimetype == "application/problem+json"

    proxy.restore()  # no restart: the pool replaced its dead connections
    assert coordinator.get("/readyz").status_code == 200
    assert coordinator.get("/api/v1/referrals?box=outbox").status_code == 200
    token = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=("demo-epr", "demo-epr-secret"))
    assert token.status_code == 200


@pytest.mark.postgres
def test_a_statement_past_the_timeout_is_cancelled_and_answered_503(app, app_config, demo):  # noqa: ARG001
    short = create_app({**app_config, "DB_STATEMENT_TIMEOUT_MS": 200})
    short.config["TESTING"] = True
    try:
        from service.auth import sessions

        original = sessions._touch

        def slow_touch(token_hash, now):
            from service.db import get_session

            get_session().execute(sa.text("SELECT pg_sleep(2)"))
            return original(token_hash, now)

        coordinator = signed_in_client(short, "coordinator@demo.stepdown.test")
        sessions._touch = slow_touch
        try:
            started = datetime.now(UTC)
            response = coordinator.get("/api/v1/referrals?box=outbox")
        finally:
            sessions._touch = original
        assert datetime.now(UTC) - started < timedelta(seconds=1.9)  # pg_sleep(2) was cut short
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert coordinator.get("/api/v1/referrals?box=outbox").status_code == 200
    finally:
        short.extensions["stepdown.engine"].dispose()


@pytest.mark.postgres
def test_every_connection_carries_the_timeouts_and_a_name(app, app_config):  # noqa: ARG001
    tuned = create_app({**app_config, "DB_STATEMENT_TIMEOUT_MS": 1234, "DB_LOCK_TIMEOUT_MS": 567,
                        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": 8900})
    try:
        with tuned.extensions["stepdown.engine"].connect() as connection:
            shown = {name: connection.execute(sa.text(f"SHOW {name}")).scalar() for name in (
                "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                "application_name")}
    finally:
        tuned.extensions["stepdown.engine"].dispose()
    assert shown == {"statement_timeout": "1234ms", "lock_timeout": "567ms",
                     "idle_in_transaction_session_timeout": "8900ms",
                     "application_name": "stepdown"}


def _drop_pooled_connection(engine: sa.Engine, database_url: str) -> None:
    """End the backend of the only connection in `engine`'s pool, as a failover or a proxy's
    idle cut would, without the pool noticing."""
    with engine.connect() as connection:
        backend = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    other = sa.create_engine(database_url)
    try:
        with other.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                      {"pid": backend}).scalar()
    finally:
        other.dispose()


_OUTBOX = "/api/v1/referrals?box=outbox"


@pytest.fixture
def one_connection_app(app, app_config, demo, database_url):  # noqa: ARG001 - demo data first
    """make(idle_ms): a coordinator's client of an app whose pool holds one connection, pinged
    when idle longer than idle_ms, which has served a request; and drop(), which ends that
    connection's backend without the pool noticing."""
    made = []

    def make(idle_ms: int):
        pooled = create_app({**app_config, "DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0,
                             "DB_PING_AFTER_IDLE_MS": idle_ms})
        pooled.config["TESTING"] = True
        made.append(pooled)
        coordinator = signed_in_client(pooled, "coordinator@demo.stepdown.test")
        assert coordinator.get(_OUTBOX).status_code == 200
        engine = pooled.extensions["stepdown.engine"]
        return coordinator, lambda: _drop_pooled_connection(engine, database_url)

    yield make
    for pooled in made:
        pooled.extensions["stepdown.engine"].dispose()


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_in_the_pool_is_replaced_before_use(one_connection_app):
    coordinator, drop = one_connection_app(50)
    drop()
    time.sleep(0.2)  # idle longer than DB_PING_AFTER_IDLE_MS: pinged, found dead, replaced
    assert coordinator.get(_OUTBOX).status_code == 200


@pytest.mark.postgres
def test_a_connection_dropped_moments_after_use_costs_one_503_then_the_pool_is_renewed(
        one_connection_app):
    # Within DB_PING_AFTER_IDLE_MS nothing pings (a round trip saved on every busy request):
    # the request that meets the dead connection is answered 503 like any database outage,
    # and the pool replaces its connections, so the next request works without a restart.
    coordinator, drop = one_connection_app(60_000)
    drop()
    failed = coordinator.get(_OUTBOX)
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    assert failed.mimetype == "application/problem+json"
    assert coordinator.get(_OUTBOX).status_code == 200


@pytest.mark.postgres
def test_an_exhausted_pool_answers_503_before_gunicorn_would_kill_the_worker(app, app_config,
                                                                            demo):  # noqa: ARG001
    small = create_app({**app_config, "DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0,
                        "DB_POOL_TIMEOUT_SECONDS": 1})
    small.config["TESTING"] = True
    engine = small.extensions["stepdown.engine"]
    try:
        coordinator = signed_in_client(small, "coordinator@demo.stepdown.test")
        with engine.connect():  # a long request elsewhere in this process holds the only one
            started = datetime.now(UTC)
            response = coordinator.get("/api/v1/referrals?box=outbox")
            waited = datetime.now(UTC) - started
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert timedelta(seconds=0.9) < waited < timedelta(seconds=5)
        assert coordinator.get("/api/v1/referrals?box=outbox").status_code == 200
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_wait_on_a_locked_row_ends_at_the_lock_timeout_with_503(app, app_config, demo, db):  # noqa: ARG001
    short = create_app({**app_config, "DB_LOCK_TIMEOUT_MS": 300})
    short.config["TESTING"] = True
    try:
        coordinator = signed_in_client(short, "coordinator@demo.stepdown.test")
        with db.get_bind().connect() as other:
            # Another transaction (a migration, say) holds the referral table.
            other.execute(sa.text("LOCK TABLE referral IN ACCESS EXCLUSIVE MODE"))
            started = datetime.now(UTC)
            response = coordinator.get("/api/v1/referrals?box=outbox")
            waited = datetime.now(UTC) - started
            other.rollback()
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert waited < timedelta(seconds=3)
    finally:
        short.extensions["stepdown.engine"].dispose()


# ---- A worker killed mid-delivery (real processes) ------------------------------------------

@pytest.fixture
def stalling_receiver():
    receiver = WebhookReceiver(stall_first=True)
    try:
        yield receiver
    finally:
        receiver.close()


def _webhook_message(db, url: str, now: datetime) -> OutboxMessage:
    """A webhook for the demo EPR, due now by the real clock (the workers run on it)."""
    client = db.exec(select(ApiClient).where(ApiClient.client_id == "demo-epr")).one()
    subscription = WebhookSubscription(api_client_id=client.id, url=url, secret="s" * 32,
                                       is_active=True, created_at=now)
    db.add(subscription)
    db.flush()
    message = enqueue(db, channel="webhook", topic="referral.send",
                      recipient=subscription.url, payload={"resourceType": "Task"},
                      webhook_id=subscription.id, now=now - timedelta(seconds=1))
    db.commit()
    return message


@pytest.mark.postgres
def test_a_worker_rides_out_the_database_going_away(app, db, demo, database_url,  # noqa: ARG001
                                                    token_key_file, processes):
    upstream = sa.engine.make_url(database_url)
    proxy = TcpProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    receiver = WebhookReceiver()
    try:
        worker_process = processes.worker("worker", service_env(
            proxy.url_for(database_url), token_key_file))
        wait_until(lambda: "outbox worker started" in processes.output(worker_process), 30,
                   "the worker to start")
        proxy.cut()
        message = _webhook_message(db, receiver.url, datetime.now(UTC))
        wait_until(lambda: "database unavailable" in processes.output(worker_process), 20,
                   "the worker to notice")
        assert worker_process.poll() is None, processes.output(worker_process)[-2000:]
        assert receiver.deliveries == []
        proxy.restore()

        def sent():
            db.expire_all()
            return db.get(OutboxMessage, message.id).status == "sent"

        wait_until(sent, 30, "the worker to deliver after the database came back", 0.2)
        assert receiver.deliveries == [str(message.id)]
    finally:
        receiver.close()
        processes.kill_all()
        proxy.close()


@pytest.mark.postgres
def test_a_worker_killed_mid_delivery_is_replaced_and_the_message_goes_once_more(
        app, db, demo, database_url, token_key_file, processes, stalling_receiver):  # noqa: ARG001
    now = datetime.now(UTC)  # the workers run on the real clock
    message = _webhook_message(db, stalling_receiver.url, now)
    env = service_env(database_url, token_key_file, OUTBOX_LEASE_SECONDS="3")

    first = processes.worker("worker-1", env)
    assert stalling_receiver.first_arrived.wait(30), processes.output(first)[-2000:]
    db.expire_all()
    claimed = db.get(OutboxMessage, message.id)
    assert (claimed.status, claimed.attempts) == ("pending", 1)
    processes.kill(first)  # SIGKILL mid-delivery: no chance to record anything

    second = processes.worker("worker-2", env)

    def sent():
        db.expire_all()
        return db.get(OutboxMessage, message.id).status == "sent"

    wait_until(sent, 30, "the second worker to deliver", interval=0.2)
    row = db.get(OutboxMessage, message.id)
    assert row.attempts == 2 and row.last_error is None
    # Past another lease: nothing more is sent.
    wait_until(lambda: second.poll() is None and datetime.now(UTC) > now + timedelta(seconds=5),
               10, "another lease to pass")
    assert stalling_receiver.deliveries == [str(message.id), str(message.id)]
    assert json.loads(row.payload) == {"resourceType": "Task"}
