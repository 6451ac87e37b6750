"""Helpers for the journey, referral and inbox tests: arrange rows with the models, act through
the API. (No tests here; the module name keeps it with the referral tests it serves.)"""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import nhs_number
import pytest
from sqlmodel import Session

from models import Consent, Journey, JourneyMember, Offer, Person, PersonNeed, Referral
from tests.conftest import signed_in_client as signed_in  # noqa: F401 - re-exported

BRENT_CMHT = "Brent Community Mental Health Team"
HANDOVER = {
    "goals": "Meet people locally and get back to the allotment.",
    "relapse_signs": "Stops answering texts; sleeping in the day.",
    "crisis_plan": "Call the crisis line; sister is the first contact.",
    "risk_summary": "No current risk to others; past self-harm when unwell.",
    "contact_in_hours": "Casey Coordinator, Brent CMHT, 020 7946 0000",
    "contact_out_of_hours": "Crisis line 0800 000 0000",
}


def nhs(seed: int) -> str:
    """A Modulus 11 valid NHS number in the 999 range (never issued to a real patient)."""
    n = seed
    while True:
        stem = f"999{n:06d}"
        check = nhs_number.calculate_checksum(stem)
        if check is not None and check < 10:
            return f"{stem}{check}"
        n += 1


def make_offer(db: Session, demo: dict, org_key: str = "vcse-a", name: str = "Peer mentoring",
               **values) -> Offer:
    offer = Offer(organisation_id=demo["organisations"][org_key].id, name=name,
                  description="A test offer", **values)
    db.add(offer)
    db.commit()
    return offer


def make_person(db: Session, demo: dict, seed: int = 1, needs: tuple[str, ...] = (),
                org_key: str = "trust-a", given: str = "Amara") -> Person:
    person = Person(nhs_number=nhs(seed * 10), given_name=given, family_name="Okafor",
                    preferred_name="Amy", pronouns="she/her", date_of_birth=date(1991, 3, 14),
                    postcode_district="NW10", borough="Brent",
                    communication_needs="Text before calling",
                    about_strengths="I'm a good cook.", about_what_matters="My daughter.",
                    about_what_helps="Quiet places, not clinics.",
                    created_by_organisation_id=demo["organisations"][org_key].id)
    db.add(person)
    db.flush()
    for code in needs:
        db.add(PersonNeed(person_id=person.id, responsibility_code=code))
    db.commit()
    return person


def give_consent(db: Session, demo: dict, person: Person, org_key: str, clock,
                 **values) -> Consent:
    given = clock.now() - timedelta(days=1)
    consent = Consent(person_id=person.id, organisation_id=demo["organisations"][org_key].id,
                      purpose="Peer support", lawful_basis="public-task",
                      condition="health-social-care", method="verbal", given_at=given,
                      expires_at=given + timedelta(days=365), **values)
    db.add(consent)
    db.commit()
    return consent


def make_journey(db: Session, demo: dict, person: Person, clock, status: str = "planned",
                 members: tuple[tuple[str, str], ...] = ()) -> Journey:
    journey = Journey(person_id=person.id, team_id=demo["teams"][BRENT_CMHT].id, status=status,
                      statutory_contact_user_id=demo["users"]["coordinator@demo.stepdown.test"].id,
                      created_at=clock.now(), updated_at=clock.now())
    db.add(journey)
    db.flush()
    for email, role in members:
        db.add(JourneyMember(journey_id=journey.id, user_id=demo["users"][email].id, role=role))
    db.commit()
    return journey


def create_referral(client, journey_id: int, offer_id: int, **overrides):
    body = {"journey_id": journey_id, "offer_id": offer_id, **HANDOVER, **overrides}
    return client.post("/api/v1/referrals", json=body)


def etag(client, referral_id: int) -> str:
    response = client.get(f"/api/v1/referrals/{referral_id}")
    assert response.status_code == 200, response.get_json()
    return response.headers["ETag"]


def act(client, referral_id: int, action: str, body: dict | None = None,
        if_match: str | None = "read"):
    """POST an action; by default with the ETag just read (pass None to send no If-Match)."""
    headers = {}
    if if_match == "read":
        headers["If-Match"] = etag(client, referral_id)
    elif if_match is not None:
        headers["If-Match"] = if_match
    return client.post(f"/api/v1/referrals/{referral_id}/{action}", json=body or {},
                       headers=headers)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


@pytest.fixture
def world(app, db, demo, clock, as_user):
    """One person of trust A with consent to VCSE A, a planned journey, two offers, and the
    signed-in clients of the three sides."""
    offer = make_offer(db, demo)
    other_offer = make_offer(db, demo, "vcse-b", "Community Resilience Network")
    person = make_person(db, demo, needs=("peer-support", "social-connection"))
    consent = give_consent(db, demo, person, "vcse-a", clock)
    journey = make_journey(db, demo, person, clock)
    w = SimpleNamespace(
        demo=demo, db=db, clock=clock, offer=offer, other_offer=other_offer, person=person,
        consent=consent, journey=journey,
        coordinator=as_user("coordinator"), vcse=as_user("vcse"),
        manager=as_user("vcse-manager"), vcse_b=as_user("vcse-b"), peer=as_user("peer"),
        duty=as_user("duty"),
    )

    def later(**delta):
        """Move the clock on; sessions time out when idle, so everyone signs in again."""
        clock.advance(**delta)
        for name, email in (("coordinator", "coordinator"), ("vcse", "vcse"),
                            ("manager", "vcse-manager"), ("vcse_b", "vcse-b"), ("peer", "peer"),
                            ("duty", "duty")):
            setattr(w, name, as_user(email))

    w.later = later
    return w


def sent_referral(w, offer: Offer | None = None) -> int:
    """A referral from the world's journey, created and sent by the coordinator."""
    body = ok(create_referral(w.coordinator, w.journey.id, (offer or w.offer).id), 201)
    ok(act(w.coordinator, body["id"], "send"))
    return body["id"]


def referral_row(db: Session, referral_id: int) -> Referral:
    db.expire_all()
    return db.get(Referral, referral_id)
