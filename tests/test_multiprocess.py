"""No state lives in a process (issue 8): two gunicorn app hosts and two outbox workers share one
PostgreSQL database, and the referral story is driven through both hosts at once. Sessions,
CSRF tokens, bearer tokens, ETags and Idempotency-Key replays made on one host hold on the other,
and every outbox message (webhook and email) is delivered exactly once despite two workers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlmodel import select

from models import Offer, OutboxMessage, Referral, User
from tests.process_support import (
    BIN,
    WebhookReceiver,
    free_port,
    running_processes,
    service_env,
    sign_in,
    use_csrf_from,
    wait_until,
)
from tests.test_outbox_worker import Inbox
from tests.test_referral_support import HANDOVER, nhs

processes = running_processes  # the fixture, by the name the tests use

pytestmark = pytest.mark.postgres
PASSWORD = "stepdown-demo"  # noqa: S105 - the demo accounts' published password
TIMEOUT = 10


@pytest.fixture
def smtp_inbox():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def deployment(processes, database_url, token_key_file, smtp_inbox):
    """Demo data, then app hosts A and B and two workers, as docs/deploy.md describes."""
    smtp_port, _ = smtp_inbox
    env = service_env(database_url, token_key_file, EMAIL_BACKEND="smtp",
                      SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_port),
                      MAIL_FROM="stepdown@example.org")
    processes.run([str(BIN / "flask"), "demo-data"], env)
    a = processes.app_server("app-a", env)
    b = processes.app_server("app-b", env)
    workers = [processes.worker("worker-1", env), processes.worker("worker-2", env)]
    return a, b, workers


def _json(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:800])
    return response.json()


def test_the_referral_story_runs_across_two_hosts_and_two_workers(
        deployment, db, processes, receiver, smtp_inbox):
    a, b, workers = deployment
    _, inbox = smtp_inbox
    now = datetime.now(UTC)  # the processes run on the real clock
    users = {u.email: u.id for u in db.exec(select(User)).all()}
    offer = db.exec(select(Offer).where(Offer.name == "Peer mentoring")).one()

    # The EPR's bearer token is issued by A and accepted by B (one key for every host).
    token = _json(requests.post(f"{a}/oauth/token", data={"grant_type": "client_credentials"},
                                auth=("demo-epr", "demo-epr-secret"), timeout=TIMEOUT))
    epr = {"Authorization": f"Bearer {token['access_token']}"}
    _json(requests.post(f"{b}/api/v1/webhooks", json={"url": receiver.url}, headers=epr,
                        timeout=TIMEOUT), 201)

    # The coordinator signs in on A; the session and its CSRF token work on B.
    coordinator = sign_in(a, "coordinator@demo.stepdown.test", PASSWORD)
    use_csrf_from(coordinator, b)
    person = _json(coordinator.post(f"{a}/api/v1/people", timeout=TIMEOUT, json={
        "nhs_number": nhs(7100), "given_name": "Amara", "family_name": "Okafor",
        "date_of_birth": "1991-03-14", "postcode_district": "NW10", "borough": "Brent",
        "needs": ["peer-support"]}), 201)
    _json(coordinator.post(f"{b}/api/v1/people/{person['id']}/consents", timeout=TIMEOUT, json={
        "organisation_id": offer.organisation_id, "purpose": "Peer mentoring",
        "lawful_basis": "public-task", "condition": "health-social-care", "method": "verbal",
        "given_at": (now - timedelta(minutes=1)).isoformat(),
        "expires_at": (now + timedelta(days=365)).isoformat()}), 201)
    journey = _json(coordinator.post(f"{a}/api/v1/journeys", timeout=TIMEOUT, json={
        "person_id": person["id"],
        "statutory_contact_user_id": users["coordinator@demo.stepdown.test"],
        "review_due": (now.date() + timedelta(days=28)).isoformat()}), 201)

    # Create on A; the retry reaches B and gets A's response, not a second referral.
    body = {"journey_id": journey["id"], "offer_id": offer.id, **HANDOVER}
    key = {"Idempotency-Key": "two-hosts-referral-1"}
    created = coordinator.post(f"{a}/api/v1/referrals", json=body, headers=key, timeout=TIMEOUT)
    replayed = coordinator.post(f"{b}/api/v1/referrals", json=body, headers=key, timeout=TIMEOUT)
    assert _json(replayed, 201) == _json(created, 201)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["ETag"] == created.headers["ETag"]
    rid = created.json()["id"]
    assert db.scalar(sa.select(sa.func.count()).select_from(Referral)
                     .where(Referral.person_id == person["id"])) == 1

    def read(host: str, who: requests.Session) -> requests.Response:
        response = who.get(f"{host}/api/v1/referrals/{rid}", timeout=TIMEOUT)
        assert response.status_code == 200, response.text[:500]
        return response

    def act(host: str, who: requests.Session, action: str, etag: str, json=None):
        return who.post(f"{host}/api/v1/referrals/{rid}/{action}", json=json or {},
                        headers={"If-Match": etag}, timeout=TIMEOUT)

    sent = act(b, coordinator, "send", read(a, coordinator).headers["ETag"])
    assert _json(sent)["status"] == "requested"

    # The VCSE worker signs in on B; reads on A; accepts on B with A's ETag.
    vcse = sign_in(b, "vcse@demo.stepdown.test", PASSWORD)
    use_csrf_from(vcse, a)
    seen = read(a, vcse).headers["ETag"]
    accepted = act(b, vcse, "accept", seen)
    assert _json(accepted)["status"] == "accepted"
    stale = act(a, vcse, "start", seen)  # A has no cached copy: it sees B's change
    assert stale.status_code == 412 and stale.headers["ETag"] == accepted.headers["ETag"]
    assert _json(act(a, vcse, "start", accepted.headers["ETag"]))["status"] == "in-progress"
    contact = {"outcome": "attended", "happened_at": datetime.now(UTC).isoformat()}
    _json(vcse.post(f"{a}/api/v1/referrals/{rid}/contacts", json=contact, timeout=TIMEOUT,
                    headers={"Idempotency-Key": "two-hosts-contact-1"}), 201)
    again = vcse.post(f"{b}/api/v1/referrals/{rid}/contacts", json=contact, timeout=TIMEOUT,
                      headers={"Idempotency-Key": "two-hosts-contact-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    done = act(b, vcse, "complete", read(a, vcse).headers["ETag"])
    assert _json(done)["status"] == "completed"

    # The EPR reads the result on B with A's token; the record shows one history.
    record = _json(requests.get(f"{b}/api/v1/referrals/{rid}", headers=epr, timeout=TIMEOUT))
    assert [e["action"] for e in record["events"]] == ["create", "send", "accept", "start",
                                                       "complete"]
    assert len(record["contacts"]) == 1

    # Both workers drain the outbox; each message leaves exactly once.
    def all_delivered():
        db.expire_all()
        rows = db.exec(select(OutboxMessage)).all()
        return rows if rows and all(r.status == "sent" for r in rows) else None

    rows = wait_until(all_delivered, 30, "the workers to deliver every outbox message", 0.2)
    assert all(w.poll() is None for w in workers), "a worker exited"
    webhook_ids = sorted(str(r.id) for r in rows if r.channel == "webhook")
    emails = Counter((r.recipient, r.topic) for r in rows if r.channel == "email")
    assert {r.topic for r in rows if r.channel == "webhook"} >= {
        "referral.send", "referral.accept", "referral.start", "referral.complete"}
    assert emails, "the story queued no email"
    wait_until(lambda: len(inbox.messages) >= sum(emails.values()), 10, "the emails to arrive")
    wait_until(lambda: datetime.now(UTC) - now > timedelta(seconds=1), 5, "late duplicates")
    assert sorted(receiver.deliveries) == webhook_ids  # each once, none twice
    assert all(r.attempts == 1 for r in rows)
    received = Counter((m["to"][0], _topic(m["data"])) for m in inbox.messages)
    assert received == emails


def _topic(data: str) -> str:
    for line in data.splitlines():
        if line.lower().startswith("x-stepdown-topic:"):
            return line.split(":", 1)[1].strip()
    return ""
