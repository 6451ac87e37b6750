"""Duty clinician pages: the flags queue (most urgent, then most overdue, first; time to target;
paginated), a flag's page with the person summary, acknowledge, resolve with an outcome and step
up. The pages call the flag operations the API calls; forms keep what was typed, stale forms
say what changed, and nothing is written when a form is refused."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from sqlmodel import select

from models import Flag, Journey
from service.flags.operations import raise_flag
from tests.conftest import signed_in_client
from tests.test_referral_support import act, ok, sent_referral
from tests.test_referral_support import world as _world_fixture
from tests.test_security_headers import _forget_previous_principal

world = _world_fixture
BRENT_CMHT = "Brent Community Mental Health Team"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _plain(response) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>|\s+", " ", _text(response)))


def _title(response) -> str:
    return html_lib.unescape(re.search(r"<title>(.*?)</title>", _text(response), re.S)
                             .group(1).strip())


def _error_summary(response) -> list[str]:
    html = _text(response)
    assert 'class="nhsuk-error-summary"' in html, html[:3000]
    block = html.split('nhsuk-error-summary__list">', 1)[1].split("</ul>", 1)[0]
    return [html_lib.unescape(re.sub(r"<[^>]+>|\s+", " ", m)).strip()
            for m in re.findall(r"<li>(.*?)</li>", block, re.S)]


def _flag(db, flag_id: int) -> Flag:
    db.expire_all()
    return db.get(Flag, flag_id)


@pytest.fixture
def active(world):
    """The world's referral sent and accepted (so the journey is active)."""
    referral_id = sent_referral(world)
    ok(act(world.vcse, referral_id, "accept", {}))
    return referral_id


@pytest.fixture
def concern(world, active) -> int:
    """An urgent concern raised by the VCSE worker through the API."""
    body = ok(world.vcse.post("/api/v1/flags", json={
        "referral_id": active, "category": "deterioration", "urgency": "urgent",
        "description": "Stopped replying; missed two meetings"}), 201)
    return body["id"]


def _journey(db) -> Journey:
    db.expire_all()
    return db.exec(select(Journey)).one()


# --- who sees what ----------------------------------------------------------------------------

def test_home_is_the_flags_queue_for_duty_clinicians(world, concern):
    response = world.duty.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/flags")
    page = world.duty.get("/flags")
    assert page.status_code == 200 and _title(page) == "Flags queue – Stepdown"
    assert 'href="/flags"' in _text(page)


def test_vcse_staff_and_other_teams_cannot_work_the_queue(app, world, concern):
    assert world.vcse.get("/flags").status_code == 403
    assert world.vcse.get(f"/flags/{concern}").status_code == 403
    assert world.vcse.post(f"/flags/{concern}/acknowledge").status_code == 403
    assert world.peer.get("/flags").status_code == 403
    other_team = signed_in_client(app, "safeguarding@demo.stepdown.test")
    assert other_team.get(f"/flags/{concern}").status_code == 404
    assert other_team.post(f"/flags/{concern}/acknowledge", data={"version": "1"}
                           ).status_code == 404
    assert "No open and acknowledged flags" in _plain(other_team.get("/flags"))
    _forget_previous_principal()
    assert world.duty.get("/flags/99999999999").status_code == 404
    # A care coordinator of the team may read and work its queue too.
    assert world.coordinator.get(f"/flags/{concern}").status_code == 200


# --- the queue --------------------------------------------------------------------------------

def _raise(db, journey, trigger: str, urgency: str, **kwargs) -> Flag:
    flag = raise_flag(db, trigger=trigger, journey=journey, urgency=urgency, **kwargs)
    db.commit()
    return flag


def test_queue_is_most_urgent_then_most_overdue_first_with_time_to_target(world, active):
    journey = _journey(world.db)
    routine = _raise(world.db, journey, "review-overdue", "routine")
    emergency = _raise(world.db, journey, "consent-withdrawn", "emergency",
                       description="test")
    urgent = _raise(world.db, journey, "responsibility-gap", "urgent")
    world.clock.advance(minutes=5)
    page = world.duty.get("/flags")
    html = _text(page)
    order = [int(m) for m in re.findall(r'href="/flags/(\d+)"', html)]
    assert order == [emergency.id, urgent.id, routine.id]
    assert "Due in 55 minutes" in _plain(page)  # emergency: 1 hour from raising
    world.later(hours=2)
    page = world.duty.get("/flags")
    assert "Overdue by 1 hour 5 min" in _plain(page)
    assert "app-row--overdue" in _text(page) and "app-tag--emergency" in _text(page)


def test_queue_filters_and_pages(world, active):
    journey = _journey(world.db)
    team = world.demo["teams"][BRENT_CMHT]
    now = world.clock.now()
    for n in range(23):
        world.db.add(Flag(person_id=journey.person_id, journey_id=journey.id, trigger="concern",
                          category="deterioration", urgency="routine", dedupe_key=f"concern:t{n}",
                          routed_team_id=team.id, status="open", raised_at=now,
                          acknowledgement_due=now + timedelta(days=2, minutes=n)))
    world.db.commit()
    first = world.duty.get("/flags")
    html = _text(first)
    assert len(re.findall(r'class="app-flag-queue__name"', html)) == 20
    next_href = html_lib.unescape(re.search(r'href="([^"]*cursor=[^"]*)"', html).group(1))
    second = world.duty.get(next_href)
    assert len(re.findall(r'class="app-flag-queue__name"', _text(second))) == 3
    assert _title(second) == "Flags queue (more flags) – Stepdown"
    resolved = world.duty.get("/flags?status=resolved")
    assert "No resolved flags for your team." in _plain(resolved)
    assert _title(resolved) == "Flags queue: resolved – Stepdown"
    for bad in ("status=everything", "cursor=nonsense", "cursor=" + "9" * 90):
        assert world.duty.get(f"/flags?{bad}").status_code in (200, 302), bad


# --- one flag ---------------------------------------------------------------------------------

def test_flag_page_shows_the_person_summary_and_the_handover(world, concern):
    page = world.duty.get(f"/flags/{concern}")
    assert page.status_code == 200
    assert _title(page) == "Urgent flag: Amy Okafor – Stepdown"
    text = _plain(page)
    for expected in ("Concern: their mental health is getting worse",
                     "Stopped replying; missed two meetings", "by Val Worker, Brent Peer Mentors",
                     BRENT_CMHT, "NHS number", "Text before calling", "View Amy's full record",
                     "Peer mentoring, Brent Peer Mentors", "Crisis plan",
                     "Call the crisis line; sister is the first contact", "Due in",
                     "Flag raised"):
        assert expected in text, expected
    nhs = world.person.nhs_number
    assert f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" in text


def test_acknowledge_with_a_note_and_a_stale_form_shows_the_latest(world, concern):
    version = str(_flag(world.db, concern).version)
    too_long = world.duty.post(f"/flags/{concern}/acknowledge",
                               data={"note": "x" * 4001, "version": version})
    assert too_long.status_code == 422
    assert _error_summary(too_long) == ["The note must be 4000 characters or fewer"]
    assert _flag(world.db, concern).status == "open"
    response = world.duty.post(f"/flags/{concern}/acknowledge",
                               data={"note": "Dana calling the person today", "version": version})
    assert response.status_code == 302
    flag = _flag(world.db, concern)
    assert flag.status == "acknowledged" and flag.acknowledged_at is not None
    page = world.duty.get(f"/flags/{concern}")
    assert "Flag acknowledged" in _plain(page) and "Dana calling the person today" in _plain(page)
    again = world.duty.post(f"/flags/{concern}/acknowledge", data={"version": version})
    assert again.status_code == 409
    assert _error_summary(again)[0].startswith("This flag changed while you were looking at it")


def test_resolve_needs_an_outcome_and_keeps_the_note(world, concern):
    form = world.duty.get(f"/flags/{concern}/resolve")
    assert _title(form) == "Resolve the flag: Amy Okafor – Stepdown"
    version = str(_flag(world.db, concern).version)
    response = world.duty.post(f"/flags/{concern}/resolve",
                               data={"note": "Spoke to Val", "version": version})
    assert response.status_code == 422 and _error_summary(response) == ["Select the outcome"]
    assert "Spoke to Val" in _text(response)
    response = world.duty.post(f"/flags/{concern}/resolve", data={
        "outcome": "advice-given", "note": "Spoke to Val", "version": version})
    assert response.status_code == 302
    flag = _flag(world.db, concern)
    assert (flag.status, flag.outcome, flag.resolution_note) == (
        "resolved", "advice-given", "Spoke to Val")
    assert "This flag is already resolved" in _plain(world.duty.get(f"/flags/{concern}/resolve"))
    assert _journey(world.db).stepped_up_at is None


def test_step_up_from_the_flag(world, concern):
    journey = _journey(world.db)
    form = world.duty.get(f"/flags/{concern}/step-up")
    assert form.status_code == 200
    assert _title(form) == "Step up: Amy Okafor – Stepdown"
    assert "Peer mentoring, Brent Peer Mentors" in _plain(form)
    stale = world.duty.post(f"/flags/{concern}/step-up",
                            data={"version": str(journey.version - 1), "note": "Seeing her"})
    assert stale.status_code == 409 and "Seeing her" in _text(stale)
    assert _journey(world.db).stepped_up_at is None
    response = world.duty.post(f"/flags/{concern}/step-up", data={
        "version": str(journey.version), "note": "Home visit tomorrow",
        "hold_open_referrals": "true"})
    assert response.status_code == 302
    journey = _journey(world.db)
    assert journey.stepped_up_at is not None and journey.step_up_flag_id == concern
    flag = _flag(world.db, concern)
    assert (flag.status, flag.outcome) == ("resolved", "stepped-up")
    page = _plain(world.duty.get(f"/flags/{concern}"))
    assert "Stepped up: your team has taken the person back" in page
    assert "Stepped up to our team" in page
    after = world.duty.get(f"/flags/{concern}/step-up")
    assert "cannot be stepped up now" in _plain(after)


def test_resolving_as_stepped_up_steps_the_journey_up(world, concern):
    version = str(_flag(world.db, concern).version)
    response = world.duty.post(f"/flags/{concern}/resolve", data={
        "outcome": "stepped-up", "version": version})
    assert response.status_code == 302
    assert _journey(world.db).stepped_up_at is not None


def test_step_up_refused_when_the_journey_is_not_active(world):
    referral_id = sent_referral(world)  # sent, not accepted: the journey is still planned
    body = ok(world.vcse.post("/api/v1/flags", json={
        "referral_id": referral_id, "category": "medication", "urgency": "routine"}), 201)
    page = world.duty.get(f"/flags/{body['id']}")
    assert f'/flags/{body["id"]}/step-up' not in _text(page)
    journey = _journey(world.db)
    response = world.duty.post(f"/flags/{body['id']}/step-up",
                               data={"version": str(journey.version)})
    assert response.status_code == 409
    assert "only an active journey can be stepped up" in _plain(response)
