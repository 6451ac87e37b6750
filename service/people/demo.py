"""Demo offers and people (fictional) for the demo alliance; idempotent like service.demo.

NHS numbers are in the 999 range that is never issued to real patients; each passes the
Modulus 11 check of the `nhs-number` library (asserted at load).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from models import Consent, Offer, OfferArea, OfferResponsibility, Person, PersonNeed
from models.nhs_number import normalise_nhs_number
from service import clock
from service.offers.operations import record_capacity

# (org key, name, description, min age, max age, eligibility, areas, responsibilities,
#  capacity, waitlist weeks, response target days, status, assured)
OFFERS = [
    ("vcse-a", "Peer mentoring",
     "One-to-one peer mentoring with a trained mentor who has lived experience of mental "
     "ill health: weekly meetings for up to six months, in the community or by phone.",
     18, None, "Adults stepping down from secondary mental-health care in Brent.",
     ["Brent", "NW10", "NW2", "HA9", "HA0"], ["peer-support", "social-connection"],
     "capacity", None, 5, "active", date(2026, 9, 1)),
    ("vcse-a", "Choice and Control peer coaching",
     "Peer coaches help people set their own goals and find what works for them, "
     "building on what's strong rather than what's wrong.",
     18, 65, "People who want to take more control of their support.",
     ["Brent", "Harrow"], ["peer-support"],
     "waitlist", 4, 10, "active", date(2026, 6, 15)),
    ("vcse-a", "Hearing Voices peer group",
     "A fortnightly peer-led group for people who hear voices or have unusual experiences.",
     16, None, None, ["Brent"], ["peer-support", "social-connection"],
     "no-capacity", None, 10, "temporarily closed", None),
    ("vcse-b", "Community Resilience Network",
     "Connects people with local groups, activities and volunteering; a link worker stays "
     "alongside for the first weeks.",
     18, None, "Harrow residents, or people registered with a Harrow GP.",
     ["Harrow", "HA1", "HA2", "HA3"], ["social-connection"],
     "capacity", None, 5, "active", date(2026, 10, 1)),
    ("vcse-b", "Housing advice surgery",
     "Advice on tenancy problems, rent arrears, homelessness applications and moving home.",
     18, None, None, ["Harrow", "Brent"], ["housing-advice", "benefits-advice"],
     "waitlist", 2, 3, "active", date(2026, 3, 20)),
    ("vcse-c", "Employment support",
     "Individual placement and support: an employment specialist helps people find and keep "
     "paid work, working alongside their mental-health support.",
     18, 66, "People who want paid work.",
     ["Lambeth", "SE11", "SW9", "SW2"], ["employment-support"],
     "capacity", None, 5, "active", date(2026, 8, 10)),
    ("vcse-c", "Benefits and money advice",
     "Help with benefit claims, assessments, appeals and debt.",
     18, None, None, ["Lambeth", "Southwark"], ["benefits-advice"],
     "capacity", None, 5, "active", None),
]

# (nhs number, given, family, preferred, pronouns, born, district, borough, communication
#  needs, strengths, what matters, what helps, needs, registering org, consents to orgs)
PEOPLE = [
    ("9991000011", "Amara", "Okafor", "Amy", "she/her", date(1991, 3, 14), "NW10", "Brent",
     None,
     "I'm a good cook and I like looking after people. I finished a college course last year.",
     "My daughter, and getting back to church on Sundays.",
     "Text me first before you ring. Meeting somewhere quiet, not a clinic.",
     ["peer-support", "social-connection", "medication-management"], "trust-a",
     ["vcse-a", "vcse-b"]),
    ("9992000023", "Tomasz", "Nowak", None, "he/him", date(1984, 11, 2), "NW2", "Brent",
     "Polish is my first language; written English is easier than phone calls.",
     "I can fix bikes and I'm patient with people.",
     "Having work again. Keeping my flat.",
     "Clear plans written down. Not too many new people at once.",
     ["employment-support", "housing-advice"], "trust-a", ["vcse-a", "vcse-c"]),
    ("9993000035", "Grace", "Mensah", None, "she/her", date(1968, 6, 30), "HA9", "Brent",
     "I use hearing aids: face me when you talk, and please avoid noisy rooms.",
     "I have brought up three children and I know my own mind.",
     "My garden, my grandchildren, and not going back into hospital.",
     "Being listened to. A regular time each week.",
     ["peer-support", "risk-assessment"], "trust-a", ["vcse-a"]),
    ("9994000047", "Jordan", "Reid", "Jay", "they/them", date(2001, 1, 19), "HA1", "Harrow",
     None,
     "Music — I make beats and I used to run a youth group.",
     "Friends, being taken seriously, and my cat.",
     "Meeting outside, walking and talking. Plenty of notice if plans change.",
     ["social-connection", "peer-support"], "trust-a", ["vcse-b"]),
    ("9995000059", "Farah", "Hussain", None, "she/her", date(1995, 8, 8), "HA2", "Harrow",
     "Prefers a female worker.",
     "I'm organised and I'm good with numbers.",
     "Sorting out my benefits so I stop worrying about money.",
     "Someone who explains forms step by step.",
     ["benefits-advice", "housing-advice"], "trust-a", ["vcse-b"]),
    ("9996000060", "Desmond", "Clarke", "Des", "he/him", date(1959, 4, 21), "NW10", "Brent",
     "Large print, please.",
     "I was a bus driver for 25 years — I know every street round here.",
     "Getting out of the flat and seeing people.",
     "A phone call the day before to remind me.",
     ["social-connection", "care-coordination"], "trust-a", []),
    ("9997000072", "Priya", "Shah", None, "she/her", date(1988, 12, 5), "SW9", "Lambeth",
     None,
     "I'm a qualified accountant and a fast learner.",
     "Going back to work part-time, and my running club.",
     "Flexible times around my son's school day.",
     ["employment-support"], "trust-b", ["vcse-c"]),
    ("9998000084", "Kwame", "Asante", None, "he/him", date(1979, 2, 27), "SE11", "Lambeth",
     "Dyslexic: prefers to talk things through rather than read letters.",
     "I'm a good listener and people trust me.",
     "Staying well and helping others who've been where I've been.",
     "Peer support from someone who gets it.",
     ["peer-support", "employment-support"], "trust-b", ["vcse-c"]),
]

CONSENT_PURPOSE = "Sharing my details and About me so they can offer me support"


def _offer(db: Session, org_id: int, row) -> Offer:
    (_key, name, description, min_age, max_age, eligibility, areas, codes, capacity,
     waitlist_weeks, target, status, assured) = row
    offer = db.exec(select(Offer).where(Offer.organisation_id == org_id,
                                        Offer.name == name)).first()
    if offer is not None:
        return offer
    offer = Offer(organisation_id=org_id, name=name, description=description, min_age=min_age,
                  max_age=max_age, eligibility=eligibility, capacity=capacity,
                  waitlist_weeks=waitlist_weeks, response_target_days=target, status=status,
                  assured_date=assured)
    db.add(offer)
    db.flush()
    record_capacity(db, offer, clock.now() - timedelta(days=730))  # running for two years
    for area in areas:
        db.add(OfferArea(offer_id=offer.id, area=area))
    for code in codes:
        db.add(OfferResponsibility(offer_id=offer.id, responsibility_code=code))
    return offer


def _person(db: Session, base: dict, row, recorder_id: int | None) -> Person:
    (nhs, given, family, preferred, pronouns, born, district, borough, communication,
     strengths, matters, helps, needs, org_key, _consents) = row
    nhs = normalise_nhs_number(nhs)
    person = db.exec(select(Person).where(Person.nhs_number == nhs)).first()
    if person is not None:
        return person
    now = clock.now()
    person = Person(nhs_number=nhs, given_name=given, family_name=family,
                    preferred_name=preferred, pronouns=pronouns, date_of_birth=born,
                    postcode_district=district, borough=borough,
                    communication_needs=communication, about_strengths=strengths,
                    about_what_matters=matters, about_what_helps=helps,
                    about_updated_by_user_id=recorder_id, about_updated_at=now,
                    created_by_organisation_id=base["organisations"][org_key].id,
                    created_at=now, updated_at=now)
    db.add(person)
    db.flush()
    for code in needs:
        db.add(PersonNeed(person_id=person.id, responsibility_code=code))
    return person


def _consent(db: Session, person: Person, org_id: int, recorder_id: int | None,
             index: int) -> None:
    exists = db.exec(select(Consent.id).where(Consent.person_id == person.id,
                                              Consent.organisation_id == org_id,
                                              Consent.purpose == CONSENT_PURPOSE)).first()
    if exists is not None:
        return
    given = clock.now() - timedelta(days=14 + index)
    db.add(Consent(person_id=person.id, organisation_id=org_id, purpose=CONSENT_PURPOSE,
                   lawful_basis="public-task", condition="health-social-care",
                   method="written" if index % 2 else "verbal",
                   recorded_by_user_id=recorder_id, given_at=given,
                   expires_at=given + timedelta(days=365)))


def load_demo_offers_and_people(db: Session, base: dict) -> dict:
    """Add the demo offers and people if absent; return them by name / NHS number."""
    orgs = base["organisations"]
    offers = {row[1]: _offer(db, orgs[row[0]].id, row) for row in OFFERS}
    coordinator = base["users"]["coordinator@demo.stepdown.test"]
    people: dict[str, Person] = {}
    for index, row in enumerate(PEOPLE):
        # The demo has staff accounts only in trust A; trust B's records have no recorder.
        recorder_id = coordinator.id if row[13] == "trust-a" else None
        person = _person(db, base, row, recorder_id)
        people[person.nhs_number] = person
        for org_key in row[-1]:
            _consent(db, person, orgs[org_key].id, recorder_id, index)
    db.flush()
    return {"offers": offers, "people": people}
