"""Demo journeys and referrals in every state for the demo people (idempotent).

Runs after `service.people.demo.load_demo_offers_and_people`. Each referral is walked through
the lifecycle of `models.referral_lifecycle` step by step, with a referral event per step dated
in the past, so the inbox, the timelines and the flow figures look like a working alliance.
A person who already has a journey is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from models import Contact, Journey, JourneyMember, Note, Person, Referral, ReferralEvent
from models.flag_rules import safety_net_end
from models.nhs_number import normalise_nhs_number
from models.referral_lifecycle import check_reason, next_status
from service import clock
from service.flows.facts import refresh_flows
from service.referrals.operations import REFERRER_ACTIONS, about_me_snapshot

BRENT = "Brent Community Mental Health Team"
LAMBETH = "Lambeth Community Mental Health Team"
COORDINATOR = "coordinator@demo.stepdown.test"
PEER = "peer@demo.stepdown.test"
VCSE_A = "vcse@demo.stepdown.test"
VCSE_B = "vcse-b@demo.stepdown.test"
RECEIVERS = {"vcse-a": VCSE_A, "vcse-b": VCSE_B}

HANDOVER = {
    "9991000011": ("Rebuild a weekly routine and meet people outside the flat.",
                   "Stops replying to texts; stays in bed past midday.",
                   "Contact the Brent crisis line; her sister Joy is the first person to call.",
                   "No current risk to others. Past self-harm when very unwell (2023)."),
    "9992000023": ("Find paid work and keep his tenancy.",
                   "Drinks more and misses appointments when stressed about money.",
                   "Crisis line; written plan in Polish in his folder.",
                   "Low risk. Debt is the main stressor."),
    "9993000035": ("Keep well at home and stay connected with her church group.",
                   "Poor sleep, hearing voices more at night.",
                   "Call the CMHT duty line in hours, crisis line out of hours.",
                   "Low risk; medication reviewed by the CMHT."),
    "9994000047": ("Get back to making music with other people.",
                   "Withdraws from friends, stops going outside.",
                   "Crisis line; their friend Sam knows the plan.",
                   "Low risk; sensitive to sudden changes of plan."),
    "9995000059": ("Sort out her benefits and stop the worry about money.",
                   "Stops opening post, panic attacks.",
                   "Crisis line; prefers a female worker.",
                   "Low risk."),
    "9997000072": ("Return to part-time work in accounting.",
                   "Over-working, not sleeping.",
                   "Lambeth crisis line.",
                   "Low risk."),
    "9998000084": ("Train as a peer supporter.",
                   "Isolating, stops answering the phone.",
                   "Lambeth crisis line.",
                   "Low risk."),
}

# person → (owning team, journey status, discharged days ago, MDT, referrals)
# each referral: (offer name, receiving org key, [(action, days ago, reason), ...], assign)
SCRIPT = [
    ("9991000011", BRENT, None, [(COORDINATOR, "care-coordinator"), (PEER, "peer-worker"),
                                 (VCSE_A, "vcse-worker")], [
        ("Peer mentoring", "vcse-a", [("send", 20, None), ("accept", 18, None),
                                      ("start", 15, None)], VCSE_A),
        ("Community Resilience Network", "vcse-b", [("send", 1, None)], None),
    ]),
    ("9992000023", BRENT, None, [(COORDINATOR, "care-coordinator")], [
        ("Choice and Control peer coaching", "vcse-a", [("send", 6, None),
                                                        ("accept", 4, "waitlist")], None),
        ("Employment support", "vcse-c", [], None),  # a draft
    ]),
    ("9993000035", BRENT, 30, [(COORDINATOR, "care-coordinator"), (PEER, "peer-worker")], [
        ("Peer mentoring", "vcse-a", [("send", 120, None), ("accept", 118, None),
                                      ("start", 115, None), ("complete", 35, None)], VCSE_A),
    ]),
    ("9994000047", BRENT, None, [(COORDINATOR, "care-coordinator"), (VCSE_B, "vcse-worker")], [
        ("Community Resilience Network", "vcse-b", [
            ("send", 40, None), ("accept", 38, None), ("start", 35, None),
            ("hold", 7, "person-unwell")], VCSE_B),
    ]),
    ("9995000059", BRENT, None, [(COORDINATOR, "care-coordinator")], [
        ("Housing advice surgery", "vcse-b", [("send", 12, None),
                                              ("decline", 10, "no-capacity")], None),
        ("Benefits and money advice", "vcse-c", [("cancel", 9, "sent-in-error")], None),
    ]),
    ("9996000060", BRENT, None, [(COORDINATOR, "care-coordinator")], []),
    ("9997000072", LAMBETH, None, [], [
        ("Employment support", "vcse-c", [("send", 60, None), ("accept", 57, None),
                                          ("start", 50, None), ("fail", 14, "could-not-engage")],
         None),
    ]),
    ("9998000084", LAMBETH, None, [], [
        ("Benefits and money advice", "vcse-c", [("send", 3, None)], None),
    ]),
]


def _walk(db: Session, referral: Referral, person: Person, steps, referrer_id, receiver_id,
          now: datetime) -> bool:
    """Apply the lifecycle steps with past dates; True if the referral was ever accepted."""
    accepted = False
    for action, days_ago, reason in steps:
        at = now - timedelta(days=days_ago)
        to_status = next_status(referral.status, action)
        reason_code = reason if reason != "waitlist" else None
        check_reason(to_status, reason_code)
        actor = referrer_id if action in REFERRER_ACTIONS else receiver_id
        db.add(ReferralEvent(referral_id=referral.id, action=action, from_status=referral.status,
                             to_status=to_status, reason_code=reason_code, actor_user_id=actor,
                             at=at))
        if action == "send":
            referral.sent_at = at
            referral.about_me = about_me_snapshot(person)
        elif action in ("accept", "decline"):
            referral.decided_at = at
            accepted = accepted or action == "accept"
            if reason == "waitlist":
                referral.waitlist = True
                referral.expected_start = (now + timedelta(weeks=3)).date()
        elif action == "start":
            referral.started_at = at
            db.add(Contact(referral_id=referral.id, outcome="attended",
                           happened_at=at + timedelta(hours=2), recorded_by_user_id=receiver_id,
                           note="First meeting at a cafe near home.", created_at=at))
            referral.first_contact_at = at + timedelta(hours=2)
        if to_status in ("rejected", "completed", "failed", "cancelled"):
            referral.ended_at = at
        referral.status = to_status
        referral.reason_code = reason_code
        referral.updated_at = at
        referral.version += 1
    return accepted


def load_demo_journeys_and_referrals(db: Session, base: dict) -> dict:
    """Add the demo journeys and referrals if absent; return the journeys by NHS number."""
    if "people" not in base or "offers" not in base:
        from service.people.demo import load_demo_offers_and_people

        base = {**base, **load_demo_offers_and_people(db, base)}
    now = clock.now()
    users, teams, orgs = base["users"], base["teams"], base["organisations"]
    offers = {(offer.organisation_id, offer.name): offer for offer in base["offers"].values()}
    journeys: dict[str, Journey] = {}
    loaded: list[int] = []
    for nhs, team_name, discharged_ago, members, referrals in SCRIPT:
        person = db.exec(select(Person).where(
            Person.nhs_number == normalise_nhs_number(nhs))).first()
        if person is None:
            continue
        existing = db.exec(select(Journey).where(Journey.person_id == person.id)).first()
        if existing is not None:
            journeys[nhs] = existing
            continue
        team = teams[team_name]
        referrer = users[COORDINATOR].id if team_name == BRENT else None
        started = now - timedelta(days=130 if discharged_ago else 45)
        journey = Journey(person_id=person.id, team_id=team.id, statutory_contact_user_id=referrer,
                          status="planned", review_due=(now + timedelta(days=21)).date(),
                          created_by_user_id=referrer, created_at=started, updated_at=started)
        db.add(journey)
        db.flush()
        for email, role in members:
            db.add(JourneyMember(journey_id=journey.id, user_id=users[email].id, role=role))
        active = False
        for offer_name, org_key, steps, assignee in referrals:
            offer = offers[(orgs[org_key].id, offer_name)]
            created = now - timedelta(days=(steps[0][1] + 1) if steps else 1)
            goals, relapse, crisis, risk = HANDOVER[nhs]
            referral = Referral(
                journey_id=journey.id, person_id=person.id, offer_id=offer.id,
                referring_team_id=team.id, receiving_organisation_id=offer.organisation_id,
                status="draft", goals=goals, relapse_signs=relapse, crisis_plan=crisis,
                risk_summary=risk, contact_in_hours=f"{team.name}: {team.email}",
                contact_out_of_hours="Crisis line 0800 000 0000 (24 hours)",
                created_by_user_id=referrer, created_at=created, updated_at=created,
                assigned_to_user_id=users[assignee].id if assignee else None)
            db.add(referral)
            db.flush()
            db.add(ReferralEvent(referral_id=referral.id, action="create", from_status=None,
                                 to_status="draft", actor_user_id=referrer, at=created))
            receiver = users[RECEIVERS[org_key]].id if org_key in RECEIVERS else None
            active = _walk(db, referral, person, steps, referrer, receiver, now) or active
            loaded.append(referral.id)
            db.add(referral)
            if nhs == "9991000011" and offer_name == "Peer mentoring":
                db.add(Note(journey_id=journey.id, referral_id=referral.id,
                            author_user_id=users[PEER].id, author_role="peer_worker",
                            author_organisation_id=orgs["trust-a"].id, kind="client-voice",
                            text="Amy says: the cafe meetings are the first thing in months "
                                 "I've looked forward to. Please keep the same mentor.",
                            created_at=now - timedelta(days=5)))
        if active:
            journey.status = "active"
        if discharged_ago:
            journey.discharged_on = (now - timedelta(days=discharged_ago)).date()
            journey.safety_net_ends = safety_net_end(journey.discharged_on,
                                                     journey.safety_net_days)
        db.add(journey)
        journeys[nhs] = journey
    db.flush()
    refresh_flows(db, loaded)  # walked through their states directly, not by the operations
    return journeys
