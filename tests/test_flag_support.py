"""Helpers for the flag, sweep, step-up and outbox tests: rows inserted directly.

(No tests here: the referral API belongs to another area, so these tests arrange their data
with the models.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import Session

from models import Consent, Journey, JourneyMember, Offer, Person, Referral

VALID_NHS_NUMBERS = ("9434765919", "9434765870", "9434765828", "9434765911", "9434765862")
PERSON_NAME = ("Jordan", "Testperson")


def make_person(db: Session, demo, nhs_number: str = VALID_NHS_NUMBERS[0]) -> Person:
    person = Person(nhs_number=nhs_number, given_name=PERSON_NAME[0], family_name=PERSON_NAME[1],
                    date_of_birth=date(1990, 5, 17),
                    created_by_organisation_id=demo["organisations"]["trust-a"].id)
    db.add(person)
    db.flush()
    return person


def make_journey(db: Session, demo, *, person: Person | None = None, status: str = "active",
                 team: str = "Brent Community Mental Health Team",
                 discharged_on: date | None = None, safety_net_ends: date | None = None,
                 review_due: date | None = None, nhs_number: str = VALID_NHS_NUMBERS[0]) -> Journey:
    person = person or make_person(db, demo, nhs_number)
    journey = Journey(person_id=person.id, team_id=demo["teams"][team].id, status=status,
                      discharged_on=discharged_on, safety_net_ends=safety_net_ends,
                      review_due=review_due,
                      statutory_contact_user_id=demo["users"]["coordinator@demo.stepdown.test"].id)
    db.add(journey)
    db.flush()
    db.add(JourneyMember(journey_id=journey.id,
                         user_id=demo["users"]["coordinator@demo.stepdown.test"].id,
                         role="care-coordinator"))
    db.flush()
    return journey


def make_offer(db: Session, demo, *, org: str = "vcse-a", response_target_days: int = 5,
               name: str = "Peer mentoring") -> Offer:
    offer = Offer(organisation_id=demo["organisations"][org].id, name=name,
                  response_target_days=response_target_days)
    db.add(offer)
    db.flush()
    return offer


def make_referral(db: Session, demo, journey: Journey, offer: Offer, *, status: str = "requested",
                  sent_at: datetime | None = None, decided_at: datetime | None = None,
                  first_contact_at: datetime | None = None, consent: bool = True,
                  **extra) -> Referral:
    referral = Referral(journey_id=journey.id, person_id=journey.person_id, offer_id=offer.id,
                        referring_team_id=journey.team_id, receiving_organisation_id=offer.organisation_id,
                        status=status, sent_at=sent_at, decided_at=decided_at,
                        first_contact_at=first_contact_at, **extra)
    db.add(referral)
    db.flush()
    if consent:
        given = datetime(2026, 12, 1, tzinfo=UTC)
        db.add(Consent(person_id=journey.person_id, organisation_id=offer.organisation_id,
                       purpose="step-down support", lawful_basis="consent",
                       condition="explicit-consent", method="verbal", given_at=given))
        db.flush()
    return referral


def make_scenario(app, db, demo, *, referral_status: str = "in-progress", **journey_args) -> dict:
    """An active journey of the Brent CMHT with one referral to Brent Peer Mentors (vcse-a)."""
    with app.app_context():
        journey = make_journey(db, demo, **journey_args)
        offer = make_offer(db, demo)
        sent = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)
        referral = make_referral(db, demo, journey, offer, status=referral_status, sent_at=sent,
                                 decided_at=sent if referral_status != "requested" else None)
        db.commit()
    return {"journey": journey, "offer": offer, "referral": referral,
            "person_id": journey.person_id}


def flag_row(db, flag_id: int):
    from models import Flag

    db.expire_all()
    return db.get(Flag, flag_id)
