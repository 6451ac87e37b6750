"""Webhooks: API clients register callbacks; every referral status change is delivered through
the outbox as a signed FHIR Task to a real HTTP server on loopback, retried with back-off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fhir.resources.R4B.task import Task
from sqlmodel import select

from models import ApiClient, OutboxMessage, WebhookSubscription
from service.auth.passwords import hash_password
from service.interop.webhooks import verify
from tests.test_referral_support import act, ok, sent_referral
from tests.test_referral_support import world as _world_fixture
from tests.test_tokens import bearer, get_token

world = _world_fixture
URL = "/api/v1/webhooks"


class Receiver:
    """An HTTP server on 127.0.0.1 that records deliveries and answers the next status codes."""

    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/stepdown"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def epr(app, world):
    """The demo EPR (trust A, Brent CMHT): a test client and its bearer headers."""
    client = app.test_client()
    return client, bearer(get_token(client))


def _client_for(app, db, demo, org_key: str, client_id: str):
    db.add(ApiClient(client_id=client_id, name=client_id,
                     organisation_id=demo["organisations"][org_key].id,
                     secret_hash=hash_password("secret-" + client_id), scopes="referrals:read"))
    db.commit()
    client = app.test_client()
    basic = base64.b64encode(f"{client_id}:secret-{client_id}".encode()).decode()
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {basic}"}).get_json()["access_token"]
    return client, bearer(token)


def _register(client_and_headers, url):
    client, headers = client_and_headers
    return client.post(URL, json={"url": url}, headers=headers)


def _messages(db, webhook_id=None):
    db.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.channel == "webhook")
    if webhook_id is not None:
        query = query.where(OutboxMessage.webhook_id == webhook_id)
    return db.exec(query.order_by(OutboxMessage.id)).all()


def _drain(app):
    from service.jobs import worker
    from service.jobs.cli import session_factory

    with app.app_context():
        return worker.drain(session_factory, app.config["SETTINGS"])


def test_register_list_and_delete(world, epr, receiver):
    client, headers = epr
    created = _register(epr, receiver.url)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["url"] == receiver.url and len(body["secret"]) >= 32
    listed = client.get(URL, headers=headers).get_json()["items"]
    assert listed == [{k: v for k, v in body.items() if k != "secret"}]
    assert client.delete(f"{URL}/{body['id']}", headers=headers).status_code == 204
    assert client.get(URL, headers=headers).get_json()["items"] == []
    assert client.delete(f"{URL}/{body['id']}", headers=headers).status_code == 404


def test_only_api_clients_register_and_only_their_own(app, world, epr, receiver, db, demo):
    staff = world.coordinator.post(URL, json={"url": receiver.url})
    assert staff.status_code == 403
    assert world.coordinator.get(URL).status_code == 403
    mine = _register(epr, receiver.url).get_json()
    other = _client_for(app, db, demo, "vcse-a", "vcse-a-crm")
    client, headers = other
    assert client.get(URL, headers=headers).get_json()["items"] == []
    assert client.delete(f"{URL}/{mine['id']}", headers=headers).status_code == 404
    assert app.test_client().get(URL).status_code == 401


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/x", "http://user:pw@x.org/h"])
def test_bad_urls_are_refused(world, epr, url):
    response = _register(epr, url)
    assert response.status_code == 422
    assert "url" in response.get_json()["errors"]


def test_production_needs_https_and_a_public_address():
    from service.interop.webhooks import check_destination

    check_destination("http://127.0.0.1:8000/h", production=False)
    for url in ("http://example.org/h", "https://127.0.0.1/h", "https://10.0.0.7/h",
                "https://169.254.169.254/latest", "https://[::1]/h"):
        with pytest.raises(ValueError):
            check_destination(url, production=True)


def test_every_status_change_is_queued_as_a_minimal_task(world, epr, receiver):
    hook = _register(epr, receiver.url).get_json()
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "accept"))
    ok(act(world.vcse, rid, "start"))
    ok(act(world.vcse, rid, "hold", {"reason_code": "person-unwell"}))
    messages = _messages(world.db, hook["id"])
    assert [m.topic for m in messages] == ["referral.send", "referral.accept", "referral.start",
                                           "referral.hold"]
    tasks = [Task.parse_raw(m.payload) for m in messages]
    assert [t.status for t in tasks] == ["requested", "accepted", "in-progress", "on-hold"]
    assert tasks[-1].statusReason.coding[0].code == "person-unwell"
    assert tasks[0].identifier[0].value == str(rid)
    assert all(m.recipient == receiver.url and m.status == "pending" for m in messages)
    payload = messages[0].payload
    assert "Amara" not in payload and "Okafor" not in payload and world.person.nhs_number \
        not in payload


def test_the_receiving_organisation_hears_too_and_no_one_else(app, world, db, demo, receiver):
    vcse_a = _client_for(app, db, demo, "vcse-a", "vcse-a-crm")
    vcse_b = _client_for(app, db, demo, "vcse-b", "vcse-b-crm")
    hook_a = _register(vcse_a, receiver.url).get_json()
    hook_b = _register(vcse_b, receiver.url).get_json()
    rid = sent_referral(world)
    ok(act(world.vcse, rid, "decline", {"reason_code": "no-capacity"}))
    assert [m.topic for m in _messages(db, hook_a["id"])] == ["referral.send",
                                                              "referral.decline"]
    assert _messages(db, hook_b["id"]) == []


def test_a_team_client_hears_only_its_team(app, world, db, demo, receiver):
    team_b = demo["teams"]["Safeguarding Team"]  # trust A, another team
    db.add(ApiClient(client_id="safeguarding-crm", name="x",
                     organisation_id=demo["organisations"]["trust-a"].id, team_id=team_b.id,
                     secret_hash=hash_password("secret-safeguarding-crm"),
                     scopes="referrals:read"))
    db.commit()
    client = app.test_client()
    basic = base64.b64encode(b"safeguarding-crm:secret-safeguarding-crm").decode()
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {basic}"}).get_json()["access_token"]
    hook = client.post(URL, json={"url": receiver.url}, headers=bearer(token)).get_json()
    sent_referral(world)
    assert _messages(db, hook["id"]) == []


def test_delivery_is_signed_and_verifiable(app, world, epr, receiver):
    hook = _register(epr, receiver.url).get_json()
    rid = sent_referral(world)
    result = _drain(app)
    assert result.failed == 0
    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/fhir+json"
    signature = headers["X-Stepdown-Signature"]
    expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert verify(hook["secret"], body, signature)
    assert not verify("another-secret", body, signature)
    assert not verify(hook["secret"], body + b" ", signature)
    assert int(headers["X-Stepdown-Timestamp"]) == int(world.clock.now().timestamp())
    [message] = _messages(world.db, hook["id"])
    assert headers["X-Stepdown-Delivery"] == str(message.id)
    assert headers["X-Stepdown-Event"] == "referral.send"
    task = Task.parse_raw(body)
    assert task.status == "requested" and task.identifier[0].value == str(rid)
    assert json.loads(body)["meta"]["lastUpdated"]
    assert (message.status, message.attempts) == ("sent", 1)


def test_failures_are_retried_with_back_off(app, world, epr, receiver):
    hook = _register(epr, receiver.url).get_json()
    sent_referral(world)
    receiver.answers = [500, 503]
    assert _drain(app).retried == 1
    [message] = _messages(world.db, hook["id"])
    first_retry = message.next_attempt_at
    first_delay = first_retry - world.clock.now()
    assert message.status == "pending" and message.attempts == 1
    assert "HTTP 500" in message.last_error
    assert first_delay.total_seconds() > 0
    assert _drain(app).claimed == 0  # not before its time
    world.clock.at = first_retry
    assert _drain(app).retried == 1
    [message] = _messages(world.db, hook["id"])
    assert message.attempts == 2
    assert message.next_attempt_at - first_retry > first_delay  # the delay grows
    world.clock.at = message.next_attempt_at
    assert _drain(app).sent == 1
    [message] = _messages(world.db, hook["id"])
    assert message.status == "sent" and message.attempts == 3
    assert len(receiver.received) == 3
    deliveries = {h["X-Stepdown-Delivery"] for h, _b in receiver.received}
    assert deliveries == {str(message.id)}  # the same delivery id on every retry


def test_gone_switches_the_webhook_off(app, world, epr, receiver):
    hook = _register(epr, receiver.url).get_json()
    sent_referral(world)
    receiver.answers = [410]
    assert _drain(app).failed == 1
    world.db.expire_all()
    assert world.db.get(WebhookSubscription, hook["id"]).is_active is False


def test_deleting_a_webhook_drops_what_waits(app, world, epr, receiver):
    client, headers = epr
    hook = _register(epr, receiver.url).get_json()
    sent_referral(world)
    assert client.delete(f"{URL}/{hook['id']}", headers=headers).status_code == 204
    [message] = _messages(world.db, hook["id"])
    assert (message.status, message.last_error) == ("failed", "webhook deleted")
    _drain(app)
    assert receiver.received == []


def test_an_unreachable_receiver_is_retried(app, world, epr):
    hook = _register(epr, "http://127.0.0.1:9/nothing-listens").get_json()
    sent_referral(world)
    assert _drain(app).retried == 1
    [message] = _messages(world.db, hook["id"])
    assert message.status == "pending" and "ConnectionError" in message.last_error


def test_consent_withdrawal_tells_the_vcse_without_personal_data(app, world, db, demo, receiver):
    vcse_a = _client_for(app, db, demo, "vcse-a", "vcse-a-crm")
    hook = _register(vcse_a, receiver.url).get_json()
    rid = sent_referral(world)
    ok(world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                              json={"reason": "Changed their mind"}))
    assert _drain(app).failed == 0
    assert len(receiver.received) == 2  # send, then the cancellation (emails go their own way)
    headers, body = receiver.received[-1]
    assert headers["X-Stepdown-Event"] == "referral.cancel"
    assert verify(hook["secret"], body, headers["X-Stepdown-Signature"])
    task = Task.parse_raw(body)
    assert (task.status, task.statusReason.coding[0].code) == ("cancelled", "consent-withdrawn")
    assert task.identifier[0].value == str(rid)
    assert b"Amara" not in body and b"Okafor" not in body


def test_consent_withdrawal_writes_the_cancellation_to_the_outbox_of_both_sides(
        world, db, demo, epr, app):
    """The cancellation goes through the referral status listeners: the withdrawal's own
    transaction holds one webhook message per subscription, for the referring trust's client
    and the receiving organisation's, before any worker runs."""
    trust_hook = _register(epr, "http://127.0.0.1:9/trust").get_json()
    vcse_hook = _register(_client_for(app, db, demo, "vcse-a", "vcse-a-case-system"),
                          "http://127.0.0.1:9/vcse").get_json()
    rid = sent_referral(world)
    ok(world.coordinator.post(f"/api/v1/consents/{world.consent.id}/withdraw",
                              json={"reason": "Changed their mind"}))
    for hook in (trust_hook, vcse_hook):
        topics = [m.topic for m in _messages(db, hook["id"])]
        assert topics == ["referral.send", "referral.cancel"]
        payload = json.loads(_messages(db, hook["id"])[-1].payload)
        assert payload["status"] == "cancelled"
        assert payload["statusReason"]["coding"][0]["code"] == "consent-withdrawn"
        assert payload["identifier"][0]["value"] == str(rid)


def test_a_deactivated_client_gets_nothing_more(app, world, epr, receiver):
    hook = _register(epr, receiver.url).get_json()
    sent_referral(world)
    client = world.db.exec(select(ApiClient).where(ApiClient.client_id == "demo-epr")).one()
    client.is_active = False
    world.db.add(client)
    world.db.commit()
    assert _drain(app).failed == 1
    assert receiver.received == []
    [message] = _messages(world.db, hook["id"])
    assert "switched off" in message.last_error
