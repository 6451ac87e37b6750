"""End to end: a referral is sent and left unanswered; `flask sweep --as-of` past the target
raises a flag; the worker emails the team through a real SMTP server on loopback (with no
personal data); the duty clinician acknowledges and resolves it `stepped-up`, which steps the
journey up and tells the VCSE organisation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from models import AuditEvent, Flag, Journey, OutboxMessage
from tests.test_flag_support import (
    PERSON_NAME,
    VALID_NHS_NUMBERS,
    make_journey,
    make_offer,
    make_referral,
)
from tests.test_outbox_worker import Inbox, free_port


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def app_config(app_config, smtp):
    controller, _inbox = smtp
    return {**app_config, "EMAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": controller.port, "MAIL_FROM": "stepdown@demo.stepdown.test",
            "BASE_URL": "https://stepdown.example.org"}


def _assert_no_personal_data(text: str) -> None:
    for secret in (*PERSON_NAME, VALID_NHS_NUMBERS[0], "943 476 5919", "1990-05-17", "17/05/1990"):
        assert secret not in text, secret


def test_unanswered_referral_to_stepped_up(app, db, demo, as_user, smtp, clock):
    _controller, inbox = smtp
    with app.app_context():
        journey = make_journey(db, demo, discharged_on=date(2026, 12, 1),
                               safety_net_ends=date(2027, 3, 1))
        offer = make_offer(db, demo, response_target_days=5)
        referral = make_referral(db, demo, journey, offer, status="requested",
                                 sent_at=datetime(2027, 1, 4, 10, 0, tzinfo=UTC))
        # The referral was in progress elsewhere too: a second offer, already started.
        other = make_referral(db, demo, journey, make_offer(db, demo, name="Walking group"),
                              status="in-progress", sent_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
                              decided_at=datetime(2026, 12, 8, 10, 0, tzinfo=UTC),
                              first_contact_at=datetime(2026, 12, 9, 10, 0, tzinfo=UTC),
                              consent=False)
        db.commit()

    runner = app.test_cli_runner()
    # Target: 5 working days from Monday 4 January = Monday 11 January. On the 11th: in time.
    early = runner.invoke(args=["sweep", "--as-of", "2027-01-11T16:00:00Z"])
    assert "not-answered       0 flag(s) raised" in early.output
    late = runner.invoke(args=["sweep", "--as-of", "2027-01-12T08:00:00Z"])
    assert late.exit_code == 0, late.output
    assert "not-answered       1 flag(s) raised" in late.output
    [flag] = db.exec(select(Flag)).all()
    assert (flag.trigger, flag.referral_id) == ("not-answered", referral.id)
    assert flag.routed_team_id == demo["teams"]["Brent Community Mental Health Team"].id

    # The worker emails the team over SMTP.
    sent = runner.invoke(args=["worker", "--once"])
    assert "outbox: 1 sent" in sent.output, sent.output
    assert len(inbox.messages) == 1
    email = inbox.messages[0]
    assert email["to"] == ["brent-cmht@demo.stepdown.test"]
    assert f"https://stepdown.example.org/flags/{flag.id}" in email["data"]
    assert "not answered" in email["data"]
    _assert_no_personal_data(email["data"])

    # The duty clinician works the flag.
    clock.at = datetime(2027, 1, 12, 9, 30, tzinfo=UTC)
    duty = as_user("duty")
    queue = duty.get("/api/v1/flags?status=open").get_json()["items"]
    assert [f["id"] for f in queue] == [flag.id]
    read = duty.get(f"/api/v1/flags/{flag.id}")
    etag = read.headers["ETag"]
    ack = duty.post(f"/api/v1/flags/{flag.id}/acknowledge", json={"note": "On it"},
                    headers={"If-Match": etag})
    assert ack.status_code == 200, ack.get_json()
    resolved = duty.post(f"/api/v1/flags/{flag.id}/resolve",
                         json={"outcome": "stepped-up", "note": "Seen in clinic today",
                               "hold_open_referrals": True},
                         headers={"If-Match": ack.headers["ETag"]})
    assert resolved.status_code == 200, resolved.get_json()
    body = resolved.get_json()
    assert (body["status"], body["outcome"]) == ("resolved", "stepped-up")
    assert [e["kind"] for e in body["events"]] == ["raised", "acknowledged", "resolved"]

    db.expire_all()
    stepped = db.get(Journey, journey.id)
    assert stepped.stepped_up_at == clock.now()
    assert stepped.step_up_flag_id == flag.id and stepped.step_up_trigger == "flag:not-answered"
    db.refresh(other)
    assert (other.status, other.reason_code) == ("on-hold", "stepped-up")

    # The VCSE organisation is told (both referrals), again without personal data.
    runner.invoke(args=["worker", "--once"])
    vcse_mails = [m for m in inbox.messages[1:]]
    assert len(vcse_mails) == 2
    assert all(m["to"] == ["mentoring@demo.stepdown.test"] for m in vcse_mails)
    for message in inbox.messages:
        _assert_no_personal_data(message["data"])
    assert all(row.status == "sent" for row in db.exec(select(OutboxMessage)).all())

    # Every read and change of the flag was audited with the person.
    actions = [a.action for a in db.exec(select(AuditEvent).where(
        AuditEvent.record_type == "flag").order_by(AuditEvent.id)).all()]
    assert actions == ["raise", "list", "read", "acknowledge", "resolve"]
    assert db.exec(select(AuditEvent).where(AuditEvent.record_type == "flag",
                                            AuditEvent.person_id.is_(None))).all() == []
