"""Helpers for the offers, people, consent and audit tests: arrange rows with the models."""

from __future__ import annotations

from datetime import timedelta

import nhs_number
from sqlmodel import Session, select

from models import Consent, Journey, Membership, Offer, Referral, User
from service.auth.passwords import hash_password

DEMO_PASSWORD = "stepdown-demo"
BRENT_CMHT = "Brent Community Mental Health Team"


def test_range_nhs_number(seed: int) -> str:
    """A Modulus 11 valid NHS number in the 999 range (never issued to a real patient)."""
    n = seed
    while True:
        stem = f"999{n:06d}"
        check = nhs_number.calculate_checksum(stem)
        if check is not None and check < 10:
            return f"{stem}{check}"
        n += 1


test_range_nhs_number.__test__ = False  # not a test, despite the name


def invalid_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


def person_body(**overrides) -> dict:
    body = {
        "nhs_number": test_range_nhs_number(1),
        "given_name": "Amara",
        "family_name": "Okafor",
        "preferred_name": "Amy",
        "pronouns": "she/her",
        "date_of_birth": "1991-03-14",
        "postcode_district": "nw10",
        "borough": "Brent",
        "communication_needs": "Text before calling",
        "about_me": {"strengths": "I'm a good cook", "what_matters": "My daughter",
                     "what_helps": "Quiet places"},
        "needs": ["peer-support", "social-connection"],
    }
    body.update(overrides)
    return body


def register(client, **overrides):
    return client.post("/api/v1/people", json=person_body(**overrides))


def add_user(db: Session, demo: dict, email: str, org_key: str, role: str,
             team_name: str | None = None) -> User:
    """A staff account beyond the demo set (e.g. in trust B, which has none)."""
    user = User(email=email, display_name=email.split("@")[0].title(),
                password_hash=hash_password(DEMO_PASSWORD))
    db.add(user)
    db.flush()
    team = demo["teams"][team_name] if team_name else None
    db.add(Membership(user_id=user.id, organisation_id=demo["organisations"][org_key].id,
                      team_id=team.id if team else None, role=role))
    db.commit()
    return user


def add_offer(db: Session, demo: dict, org_key: str = "vcse-a", name: str = "Peer mentoring",
              **values) -> Offer:
    org_id = demo["organisations"][org_key].id
    offer = db.exec(select(Offer).where(Offer.organisation_id == org_id,
                                        Offer.name == name)).first()
    if offer is None:
        offer = Offer(organisation_id=org_id, name=name, **values)
        db.add(offer)
        db.commit()
    return offer


def add_journey(db: Session, demo: dict, person_id: int, status: str = "active",
                team_name: str = BRENT_CMHT) -> Journey:
    journey = Journey(person_id=person_id, team_id=demo["teams"][team_name].id, status=status)
    db.add(journey)
    db.commit()
    return journey


def add_referral(db: Session, demo: dict, journey: Journey, offer: Offer,
                 status: str = "requested", **values) -> Referral:
    referral = Referral(journey_id=journey.id, person_id=journey.person_id, offer_id=offer.id,
                        referring_team_id=journey.team_id,
                        receiving_organisation_id=offer.organisation_id, status=status,
                        sent_at=None if status == "draft" else values.pop("sent_at", None),
                        **values)
    db.add(referral)
    db.commit()
    return referral


def add_consent(db: Session, demo: dict, person_id: int, org_key: str, clock,
                **values) -> Consent:
    given = clock.now() - timedelta(days=1)
    consent = Consent(person_id=person_id, organisation_id=demo["organisations"][org_key].id,
                      purpose="Peer support", lawful_basis="public-task",
                      condition="health-social-care", method="verbal", given_at=given,
                      expires_at=given + timedelta(days=365), **values)
    db.add(consent)
    db.commit()
    return consent
